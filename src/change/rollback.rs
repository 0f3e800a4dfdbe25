//! Rollback and recovery: computing the state to return to, and finishing interrupted changes.
//!
//! History is a stack: an apply pushes itself; a rollback restores the state from just before
//! its target and the stack as it was then. `sysprof rollback` targets the newest apply still in
//! effect; `--to ID` targets any entry (including a rollback, which undoes that rollback). For
//! every key touched since the target, the value to restore is the `before` of the earliest
//! record that touched it. A rollback is itself a record executed through `apply::execute`, so
//! it is journaled and can be undone. An apply whose `restores` names an earlier apply (the
//! persisting record `sysprof confirm` writes) takes that apply's place on the stack.

use std::collections::HashMap;
use std::path::Path;

use crate::change::apply::{self, restore};
use crate::change::context::Context;
use crate::change::persist;
use crate::change::store::{KeyChange, PersistChange, Phase, Record, RecordKind, StoreLock};
use crate::error::{Error, Result};
use crate::profile::key::SysctlKey;
use crate::profile::value::Value;

/// One history entry with its verified record and whether it is in effect.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    /// Position in the history.
    pub seq: u64,
    /// Record id.
    pub id: String,
    /// The record.
    pub record: Record,
    /// For applies: not undone by a later rollback.
    pub in_effect: bool,
}

/// Loads and verifies the whole history, marking what is in effect.
pub fn entries(ctx: &Context) -> Result<Vec<Entry>> {
    let history = ctx.store.history()?;
    let mut loaded = Vec::with_capacity(history.len());
    for entry in history {
        let (id, record) = ctx.store.load(&entry.id)?;
        loaded.push(Entry {
            seq: entry.seq,
            id,
            record,
            in_effect: false,
        });
    }
    let stack = replay(&loaded);
    for entry in &mut loaded {
        entry.in_effect = stack.contains(&entry.seq);
    }
    Ok(loaded)
}

/// Replays the history; returns the seqs of applies in effect, oldest first.
fn replay(entries: &[Entry]) -> Vec<u64> {
    let seq_of: HashMap<&str, u64> = entries.iter().map(|e| (e.id.as_str(), e.seq)).collect();
    let mut before: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut stack = Vec::new();
    for entry in entries {
        before.insert(entry.seq, stack.clone());
        match (
            entry.record.kind,
            entry
                .record
                .restores
                .as_deref()
                .and_then(|id| seq_of.get(id)),
        ) {
            (RecordKind::Apply, Some(confirmed)) => {
                stack.retain(|seq| seq != confirmed);
                before.insert(entry.seq, stack.clone());
                stack.push(entry.seq)
            }
            (RecordKind::Apply, None) => stack.push(entry.seq),
            (RecordKind::Rollback, Some(target)) => {
                stack = before.get(target).cloned().unwrap_or_default()
            }
            (RecordKind::Rollback, None) => {}
        }
    }
    stack
}

/// What a rollback did.
#[derive(Debug, serde::Serialize)]
pub struct RolledBack {
    /// The entry whose prior state was restored.
    pub target: String,
    /// The rollback's own record id (None for a dry run).
    pub id: Option<String>,
    /// Its history position.
    pub seq: Option<u64>,
    /// The record.
    pub record: Record,
}

/// Restores the state before the newest apply in effect, or before entry `to`.
pub fn rollback(ctx: &Context, to: Option<&str>, dry_run: bool) -> Result<RolledBack> {
    let lock = ctx.store.lock(ctx.lock_timeout)?;
    recover(ctx, &lock)?;
    let all = entries(ctx)?;
    let target = match to {
        Some(id) => {
            let (id, _) = ctx.store.load(id)?;
            all.iter()
                .find(|e| e.id == id)
                .ok_or_else(|| Error::state(format!("snapshot {id} is not in the history"), None))?
        }
        None => all.iter().rev().find(|e| e.in_effect).ok_or_else(|| {
            Error::state(
                "nothing to roll back: no apply is in effect",
                Some("see `sysprof history`; `--to ID` restores the state before any entry"),
            )
        })?,
    };
    let record = restore_record(ctx, &all, target)?;
    if dry_run {
        return Ok(RolledBack {
            target: target.id.clone(),
            id: None,
            seq: None,
            record,
        });
    }
    let (id, seq) = apply::execute(ctx, &lock, &record)?;
    Ok(RolledBack {
        target: target.id.clone(),
        id: Some(id),
        seq: Some(seq),
        record,
    })
}

fn restore_record(ctx: &Context, all: &[Entry], target: &Entry) -> Result<Record> {
    let since: Vec<&Entry> = all.iter().filter(|e| e.seq >= target.seq).collect();
    let mut wanted: Vec<(String, String)> = Vec::new();
    for change in since.iter().flat_map(|e| &e.record.changes) {
        if !wanted.iter().any(|(k, _)| *k == change.key) {
            wanted.push((change.key.clone(), change.before.clone()));
        }
    }
    let mut changes = Vec::new();
    for (key, before) in wanted.into_iter().rev() {
        let now = ctx.tree.read(&SysctlKey::parse(&key)?)?;
        if !now.same_as(&Value::from_text(&before)) {
            changes.push(KeyChange {
                key,
                before: now.to_string(),
                after: before,
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
    Ok(ctx.new_record(
        ctx.store.next_seq()?,
        RecordKind::Rollback,
        target.record.profile.clone(),
        Some(target.id.clone()),
        changes,
        persist,
    ))
}

/// What recovery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recovered {
    /// No unfinished change.
    Nothing,
    /// The change had provably finished; it was committed.
    Completed,
    /// The change was undone: the host is back to the old state.
    RolledBack,
}

/// Finishes an interrupted change: commits it if it provably completed, else undoes it.
pub fn recover(ctx: &Context, lock: &StoreLock) -> Result<Recovered> {
    let Some(journal) = ctx.store.journal()? else {
        return Ok(Recovered::Nothing);
    };
    if ctx.store.history()?.iter().any(|e| e.id == journal.id) {
        ctx.store.commit(lock, &journal.id)?;
        return Ok(Recovered::Completed);
    }
    let (id, record) = ctx.store.load(&journal.id)?;
    let finished = journal.phase == Phase::Persisted
        || (journal.phase == Phase::Written && record.persist.is_none());
    if finished && state_matches(ctx, &record)? {
        ctx.store.commit(lock, &id)?;
        return Ok(Recovered::Completed);
    }
    let mut failures = Vec::new();
    let mut undone = 0;
    for change in record.changes.iter().rev() {
        match SysctlKey::parse(&change.key)
            .and_then(|key| restore(&ctx.tree, &key, &Value::from_text(&change.before)))
        {
            Ok(()) => undone += 1,
            Err(e) => failures.push(format!("{}: {e}", change.key)),
        }
    }
    if let Some(p) = &record.persist {
        let path = Path::new(&p.path);
        if persist::read(path)? != p.before {
            persist::write(path, p.before.as_deref())
                .unwrap_or_else(|e| failures.push(format!("{}: {e}", p.path)));
        }
    }
    if !failures.is_empty() {
        let cause = Error::state(format!("recovering interrupted change {}", &id[..12]), None);
        return Err(Error::Aborted {
            cause: Box::new(cause),
            undone,
            undo_failures: failures,
        });
    }
    ctx.store.abandon(lock, &id)?;
    Ok(Recovered::RolledBack)
}

fn state_matches(ctx: &Context, record: &Record) -> Result<bool> {
    for change in &record.changes {
        let key = SysctlKey::parse(&change.key)?;
        if !ctx
            .tree
            .read(&key)
            .is_ok_and(|v| v.same_as(&Value::from_text(&change.after)))
        {
            return Ok(false);
        }
    }
    match &record.persist {
        Some(p) => Ok(persist::read(Path::new(&p.path))? == p.after),
        None => Ok(true),
    }
}
