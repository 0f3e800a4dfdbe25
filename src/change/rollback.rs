//! Rollback: the change that returns the host to the state before a history entry.
//!
//! `sysprof rollback` targets the newest apply still in effect (see `history`); `--to ID`
//! targets any entry, including a rollback, which undoes that rollback. For every key touched
//! since the target, the value to restore is the `before` of the earliest record that touched
//! it. The result is an ordinary [`Change`] executed by `transaction::execute`, so a rollback is
//! journaled, recorded and can itself be undone.

use std::path::Path;

use crate::change::context::Context;
use crate::change::history::{self, Entry};
use crate::change::persist;
use crate::change::record::{Change, KeyChange, PersistChange, Record, RecordKind};
use crate::change::store::StoreLock;
use crate::change::transaction::{self, Committed};
use crate::error::{Error, Result};

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
}

/// Restores the state before the newest apply in effect, or before entry `to`.
pub fn rollback(
    ctx: &Context,
    lock: &StoreLock,
    to: Option<&str>,
    dry_run: bool,
) -> Result<RolledBack> {
    transaction::recover(ctx, lock)?;
    let all = history::entries(ctx)?;
    let target = target(ctx, &all, to)?;
    let change = restoring(ctx, &all, target)?;
    if dry_run {
        return Ok(RolledBack {
            target: target.id.clone(),
            id: None,
            seq: None,
            record: Record::new(change, ctx.stamp()?),
        });
    }
    let Committed { id, seq, record } = transaction::execute(ctx, lock, change)?;
    Ok(RolledBack {
        target: target.id.clone(),
        id: Some(id),
        seq: Some(seq),
        record,
    })
}

/// The entry to roll back: `to`, or the newest apply in effect.
fn target<'e>(ctx: &Context, all: &'e [Entry], to: Option<&str>) -> Result<&'e Entry> {
    match to {
        Some(id) => {
            let (id, _) = ctx.store.load(id)?;
            all.iter()
                .find(|e| e.id == id)
                .ok_or_else(|| Error::state(format!("snapshot {id} is not in the history"), None))
        }
        None => all.iter().rev().find(|e| e.in_effect).ok_or_else(|| {
            Error::state(
                "nothing to roll back: no apply is in effect",
                Some("see `sysprof history`; `--to ID` restores the state before any entry"),
            )
        }),
    }
}

/// The change back to the state before `target`: each key touched since at the value it had
/// before the first record that touched it, newest first; the persisted file as it was.
fn restoring(ctx: &Context, all: &[Entry], target: &Entry) -> Result<Change> {
    let since: Vec<&Entry> = all.iter().filter(|e| e.seq >= target.seq).collect();
    let mut wanted: Vec<&KeyChange> = Vec::new();
    for change in since.iter().flat_map(|e| &e.record.changes) {
        if !wanted.iter().any(|w| w.key == change.key) {
            wanted.push(change);
        }
    }
    let mut keys = Vec::new();
    for first in wanted.into_iter().rev() {
        let now = ctx.tree.read(&first.key)?;
        if !now.same_as(&first.before) {
            keys.push(KeyChange {
                key: first.key.clone(),
                before: now,
                after: first.before.clone(),
            });
        }
    }
    let persist = match since.iter().find_map(|e| e.record.persist.as_ref()) {
        Some(p) => {
            let now = persist::read(Path::new(&p.path))?;
            (now != p.before).then(|| PersistChange {
                path: p.path.clone(),
                before: now,
                after: p.before.clone(),
            })
        }
        None => None,
    };
    Ok(Change {
        kind: RecordKind::Rollback,
        profile: target.record.profile.clone(),
        restores: Some(target.id.clone()),
        keys,
        persist,
    })
}
