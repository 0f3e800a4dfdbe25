//! Rollback: the change that returns the host to the state before a history entry.
//!
//! `sysprof rollback` targets the newest apply still in effect (see `history`); `--to ID`
//! targets any entry, including a rollback, which undoes that rollback. For every key touched
//! since the target, the value to restore is the `before` of the earliest record that touched
//! it. The result is an ordinary [`Change`] executed by `transaction::execute`, so a rollback is
//! journaled, recorded and can itself be undone.

use std::path::Path;

use crate::change::context::Context;
use crate::change::coupled;
use crate::change::history::{self, Entry, History};
use crate::change::persist;
use crate::change::record::{Change, KeyChange, PersistChange, Record, RecordKind, SHORT_ID};
use crate::change::store::StoreLock;
use crate::change::transaction::{self, Committed};
use crate::error::{Error, Result};
use crate::profile::value::Value;

/// What a rollback did.
#[derive(Debug, serde::Serialize)]
pub struct RolledBack {
    /// The entry whose prior state was restored.
    pub target: String,
    /// The rollback's own record id (None for a dry run).
    pub id: Option<String>,
    /// Its history position.
    pub seq: Option<u64>,
    /// The record (for a dry run: as it would be written).
    pub record: Record,
    /// Keys left as they are, with why: triggers (actions, no state to restore) and one-way
    /// writes the kernel refuses to reverse until reboot.
    pub skipped: Vec<String>,
}

/// Restores the state before the newest apply in effect, or before entry `to`.
pub fn rollback(
    ctx: &Context,
    lock: &StoreLock,
    to: Target,
    options: Options,
) -> Result<RolledBack> {
    transaction::recover(ctx, lock)?;
    plan_and_execute(ctx, Some(lock), to, options)
}

/// What a rollback would restore, computed without the lock and without writing anything.
pub fn preview(ctx: &Context, to: Target, force: bool) -> Result<RolledBack> {
    let options = Options {
        dry_run: true,
        force,
    };
    plan_and_execute(ctx, None, to, options)
}

/// Plans the rollback and, with a lock and not a dry run, executes it.
fn plan_and_execute(
    ctx: &Context,
    lock: Option<&StoreLock>,
    to: Target,
    options: Options,
) -> Result<RolledBack> {
    let history = history::entries(ctx)?;
    let target = target(ctx, &history, to)?;
    let start = reach(&history.entries, target);
    if let Some(d) = history.damaged_since(start) {
        return Err(Error::state(
            format!(
                "history entry #{} ({}) is damaged: {}; rolling back to before #{} needs it",
                d.seq,
                &d.id[..SHORT_ID.min(d.id.len())],
                d.why,
                target.seq
            ),
            Some(
                "roll back to an entry after it with `--to ID`, or restore records/ from a backup",
            ),
        ));
    }
    let (change, skipped) = restoring(ctx, &history.entries, target, start)?;
    if !options.force {
        refuse_overwriting(&history, &change)?;
    }
    let Some(lock) = lock.filter(|_| !options.dry_run) else {
        return Ok(RolledBack {
            target: target.id.clone(),
            id: None,
            seq: None,
            record: Record::new(change, ctx.stamp()?),
            skipped,
        });
    };
    let Committed { id, seq, record } = transaction::execute(ctx, lock, change)?;
    Ok(RolledBack {
        target: target.id.clone(),
        id: Some(id),
        seq: Some(seq),
        record,
        skipped,
    })
}

/// How a rollback is carried out.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Compute and show it, change nothing.
    pub dry_run: bool,
    /// Overwrite values another writer set after sysprof.
    pub force: bool,
}

/// Which entry a rollback returns to the state before.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// The newest apply in effect.
    Newest,
    /// The entry with this id (or unique prefix).
    Id(&'a str),
    /// The newest apply in effect of the profile with this name.
    Profile(&'a str),
}

/// Refuses to write over a value another writer set after sysprof last set the key: the
/// rollback would silently undo someone else's change.
fn refuse_overwriting(history: &History, change: &Change) -> Result<()> {
    let held = history.managed();
    let drifted: Vec<String> = change
        .keys
        .iter()
        .filter_map(|k| {
            let h = held.get(&k.key)?;
            (!k.before.same_as(&h.value)).then(|| {
                format!(
                    "{} is {} (sysprof set {} in #{})",
                    k.key, k.before, h.value, h.set_by
                )
            })
        })
        .collect();
    if drifted.is_empty() {
        return Ok(());
    }
    Err(Error::state(
        format!(
            "another writer changed {} key(s) since sysprof set them, and the rollback would overwrite them: {}",
            drifted.len(),
            drifted.join("; ")
        ),
        Some("see `sysprof status` (drift); `sysprof rollback --force` overwrites them anyway"),
    ))
}

/// Records that the change `id` is no longer in effect without writing anything: a reboot
/// already dropped its unpersisted values, and writing the pre-apply values now would put stale
/// run-time values into the fresh kernel.
pub fn record_lost(ctx: &Context, lock: &StoreLock, id: &str) -> Result<RolledBack> {
    let (id, record) = ctx.store.load(id)?;
    let change = Change {
        kind: RecordKind::Rollback,
        profile: record.profile.clone(),
        restores: Some(id.clone()),
        keys: Vec::new(),
        persist: None,
    };
    let Committed {
        id: rid,
        seq,
        record,
    } = transaction::execute(ctx, lock, change)?;
    Ok(RolledBack {
        target: id,
        id: Some(rid),
        seq: Some(seq),
        record,
        skipped: Vec::new(),
    })
}

/// The entry to roll back: `to`, or the newest apply in effect.
fn target<'e>(ctx: &Context, history: &'e History, to: Target) -> Result<&'e Entry> {
    let all = &history.entries;
    match to {
        Target::Profile(name) => all
            .iter()
            .rev()
            .find(|e| e.in_effect && e.record.profile.as_ref().is_some_and(|p| p.name == name))
            .ok_or_else(|| {
                Error::state(
                    format!("nothing to roll back: no apply of profile {name} is in effect"),
                    Some("see `sysprof history`"),
                )
            }),
        Target::Id(prefix) => {
            if let Some(d) = history.damaged.iter().find(|d| d.id.starts_with(prefix)) {
                return Err(Error::state(
                    format!(
                        "history entry #{} ({prefix}) cannot be rolled back to: {}",
                        d.seq, d.why
                    ),
                    Some("restore records/ from a backup, or pick another entry"),
                ));
            }
            let (id, _) = ctx.store.load(prefix)?;
            all.iter()
                .find(|e| e.id == id)
                .ok_or_else(|| Error::state(format!("snapshot {id} is not in the history"), None))
        }
        Target::Newest => {
            let newest = all.iter().rev().find(|e| e.in_effect);
            let after = newest.map_or(0, |e| e.seq);
            if let Some(d) = history.damaged.iter().rev().find(|d| d.seq > after) {
                return Err(Error::state(
                    format!(
                        "history entry #{} ({}) is damaged: {}; what is in effect cannot be told past it",
                        d.seq,
                        &d.id[..SHORT_ID.min(d.id.len())],
                        d.why
                    ),
                    Some(
                        "roll back to a specific entry with `--to ID`, or restore records/ from a backup",
                    ),
                ));
            }
            newest.ok_or_else(|| {
                Error::state(
                    "nothing to roll back: no apply is in effect",
                    Some("see `sysprof history`; `--to ID` restores the state before any entry"),
                )
            })
        }
    }
}

/// How far back rolling back `target` reaches: its own seq, or for the persisting record of a
/// confirmation, the seq of the apply it confirmed (which it replaced in the history's stack).
fn reach(all: &[Entry], target: &Entry) -> u64 {
    let confirmed = match (target.record.kind, &target.record.restores) {
        (RecordKind::Apply, Some(id)) => all.iter().find(|e| &e.id == id),
        _ => None,
    };
    confirmed.map_or(target.seq, |e| e.seq)
}

/// The change back to the state before `target` (reaching back to `start`): each key touched
/// since at the value it had before the first record that touched it, newest first; the
/// persisted file as it was.
fn restoring(
    ctx: &Context,
    all: &[Entry],
    target: &Entry,
    start: u64,
) -> Result<(Change, Vec<String>)> {
    let since: Vec<&Entry> = all.iter().filter(|e| e.seq >= start).collect();
    let mut wanted: Vec<&KeyChange> = Vec::new();
    for change in since.iter().flat_map(|e| &e.record.changes) {
        if !wanted.iter().any(|w| w.key == change.key) {
            wanted.push(change);
        }
    }
    let (mut keys, mut skipped) = (Vec::new(), Vec::new());
    for first in wanted.into_iter().rev() {
        let now = ctx.tree.read(&first.key)?;
        if let Some(why) = not_restorable(ctx, first, &now) {
            skipped.push(format!("{}: {why}", first.key));
            continue;
        }
        if !now.same_as(&first.before) {
            keys.push(KeyChange {
                key: first.key.clone(),
                before: now,
                after: first.before.clone(),
                released: false,
                implied: false,
            });
        }
    }
    coupled::complete(&ctx.tree, &mut keys)?;
    let persist = match since.iter().find_map(|e| e.record.persist.as_ref()) {
        Some(p) => {
            let now = persist::read(Path::new(&p.path), ctx.store.euid())?;
            (now != p.before).then(|| PersistChange {
                path: p.path.clone(),
                before: now,
                after: p.before.clone(),
            })
        }
        None => None,
    };
    let change = Change {
        kind: RecordKind::Rollback,
        profile: target.record.profile.clone(),
        restores: Some(target.id.clone()),
        keys,
        persist,
    };
    Ok((change, skipped))
}

/// Why a key cannot be put back, if it cannot: a trigger holds no state; a one-way key the
/// kernel will not move back from `now` until reboot.
fn not_restorable(ctx: &Context, first: &KeyChange, now: &Value) -> Option<String> {
    let spec = ctx.schema.lookup(&first.key)?;
    if spec.trigger {
        return Some("a trigger (an action, not a state): nothing to restore".into());
    }
    let one_way = spec.one_way?;
    let (before, now) = (first.before.as_int()?, now.as_int()?);
    one_way
        .irreversible(Some(before), now)
        .then(|| format!("left at {now} until reboot: {}", one_way.note))
}
