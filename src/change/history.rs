//! The history read back: every committed record, verified, with what is still in effect.
//!
//! History is a stack: an apply pushes itself; a rollback restores the state from just before
//! its target and the stack as it was then. An apply whose `restores` names an earlier apply
//! (the persisting record `sysprof confirm` writes) takes that apply's place on the stack.

use std::collections::HashMap;

use crate::change::context::Context;
use crate::change::record::{Record, RecordKind};
use crate::error::Result;

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
