//! The history read back: every committed record, verified, with what is still in effect.
//!
//! History is a stack: an apply pushes itself; a rollback restores the state from just before
//! its target and the stack as it was then. An apply whose `restores` names an earlier apply
//! (the persisting record `sysprof confirm` writes) takes that apply's place on the stack.

use std::collections::{BTreeMap, HashMap};

use crate::change::context::Context;
use crate::change::record::{Record, RecordKind};
use crate::error::Result;
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

/// A history entry whose record cannot be used: missing, or failing its checksum.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Damaged {
    /// Position in the history.
    pub seq: u64,
    /// The record id the history names.
    pub id: String,
    /// What is wrong with it.
    pub why: String,
}

/// The history read back: intact entries (with what is in effect) and damaged ones.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct History {
    /// Entries whose record verified, oldest first.
    pub entries: Vec<Entry>,
    /// Entries whose record is missing or corrupt, oldest first.
    pub damaged: Vec<Damaged>,
    /// Bytes after the last complete line of history.jsonl (an append cut short by a crash or
    /// damage), shortened; mutating commands and `recover` mend it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub torn: Option<String>,
}

/// A key sysprof holds: set by an apply still in effect.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Managed {
    /// The value sysprof wrote last.
    pub value: Value,
    /// The history entry that wrote it.
    pub set_by: u64,
    /// The value the key had before sysprof first set it (what releasing it restores).
    pub original: Value,
}

impl History {
    /// The keys sysprof holds now, replaying the history: an apply sets its keys (remembering
    /// each key's value from before sysprof first set it); a rollback returns to the state from
    /// before its target, so keys first set after the target are no longer held; the persisting
    /// record of a confirmation takes the place of the apply it confirms.
    pub fn managed(&self) -> BTreeMap<SysctlKey, Managed> {
        let seq_of: HashMap<&str, u64> = self
            .entries
            .iter()
            .map(|e| (e.id.as_str(), e.seq))
            .collect();
        let mut before: HashMap<u64, BTreeMap<SysctlKey, Managed>> = HashMap::new();
        let mut state: BTreeMap<SysctlKey, Managed> = BTreeMap::new();
        for entry in &self.entries {
            let restores = entry
                .record
                .restores
                .as_deref()
                .and_then(|id| seq_of.get(id));
            match (entry.record.kind, restores) {
                (RecordKind::Rollback, Some(target)) => {
                    before.insert(entry.seq, state.clone());
                    state = before.get(target).cloned().unwrap_or_default();
                    continue;
                }
                (RecordKind::Rollback, None) => continue,
                (RecordKind::Apply, Some(confirmed)) => {
                    let prior = before
                        .get(confirmed)
                        .cloned()
                        .unwrap_or_else(|| state.clone());
                    before.insert(entry.seq, prior);
                }
                (RecordKind::Apply, None) => {
                    before.insert(entry.seq, state.clone());
                }
            }
            for change in &entry.record.changes {
                // A key the kernel changed as a side effect does not become one sysprof holds;
                // one it holds already moves with it.
                if change.implied && !state.contains_key(&change.key) {
                    continue;
                }
                let original = state
                    .get(&change.key)
                    .map_or_else(|| change.before.clone(), |m| m.original.clone());
                if change.released || change.after.same_as(&original) {
                    // Back at the value it had before sysprof set it: released.
                    state.remove(&change.key);
                    continue;
                }
                let held = Managed {
                    value: change.after.clone(),
                    set_by: entry.seq,
                    original,
                };
                state.insert(change.key.clone(), held);
            }
        }
        state
    }

    /// The newest entry.
    pub fn last(&self) -> Option<&Entry> {
        self.entries.last()
    }

    /// The first damaged entry at or after `seq`: what an operation reaching back to `seq`
    /// cannot see through.
    pub fn damaged_since(&self, seq: u64) -> Option<&Damaged> {
        self.damaged.iter().find(|d| d.seq >= seq)
    }
}

/// Loads and verifies the whole history, marking what is in effect. A record that is missing
/// or fails its checksum does not stop the others from being read: it is listed as damaged,
/// and what needs it refuses (see [`History::damaged_since`]).
pub fn entries(ctx: &Context) -> Result<History> {
    let lines = ctx.store.history()?;
    let torn = ctx.store.torn_tail()?;
    let mut history = History {
        torn: (!torn.is_empty()).then(|| crate::error::shorten(&torn)),
        ..History::default()
    };
    for line in lines {
        if !ctx.store.has_record(&line.id) {
            let why = "its record is missing from records/".to_owned();
            history.damaged.push(Damaged {
                seq: line.seq,
                id: line.id,
                why,
            });
            continue;
        }
        match ctx.store.load(&line.id) {
            Ok((id, record)) => history.entries.push(Entry {
                seq: line.seq,
                id,
                record,
                in_effect: false,
            }),
            Err(e) => history.damaged.push(Damaged {
                seq: line.seq,
                id: line.id,
                why: e.to_string(),
            }),
        }
    }
    let stack = replay(&history.entries);
    for entry in &mut history.entries {
        entry.in_effect = stack.contains(&entry.seq);
    }
    Ok(history)
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
