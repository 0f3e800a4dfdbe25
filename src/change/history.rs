//! The history read back: every committed record, verified, with what is still in effect.
//!
//! History is a stack: an apply pushes itself; a rollback restores the state from just before
//! its target and the stack as it was then. An apply whose `restores` names an earlier apply
//! (the persisting record `sysprof confirm` writes) takes that apply's place on the stack.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::change::context::Context;
use crate::change::record::{KeyChange, Record, RecordKind};
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
        let seq_of = seq_of(&self.entries);
        let targets = targets(&self.entries, &seq_of);
        // The state from before each entry a later one restores (only those: a copy per entry
        // would make reading a long history quadratic).
        let mut before: HashMap<u64, BTreeMap<SysctlKey, Managed>> = HashMap::new();
        let mut state: BTreeMap<SysctlKey, Managed> = BTreeMap::new();
        for entry in &self.entries {
            let restores = entry
                .record
                .restores
                .as_deref()
                .and_then(|id| seq_of.get(id));
            let keep = targets.contains(&entry.seq);
            match (entry.record.kind, restores) {
                (RecordKind::Rollback, Some(target)) => {
                    if keep {
                        before.insert(entry.seq, state.clone());
                    }
                    state = before.get(target).cloned().unwrap_or_default();
                    continue;
                }
                (RecordKind::Rollback, None) => continue,
                (RecordKind::Apply, Some(confirmed)) if keep => {
                    let prior = before.get(confirmed).cloned();
                    before.insert(entry.seq, prior.unwrap_or_else(|| state.clone()));
                }
                (RecordKind::Apply, _) if keep => {
                    before.insert(entry.seq, state.clone());
                }
                (RecordKind::Apply, _) => {}
            }
            for change in &entry.record.changes {
                hold(&mut state, change, entry.seq);
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
    let seq_of = seq_of(entries);
    let targets = targets(entries, &seq_of);
    let mut before: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut stack = Vec::new();
    for entry in entries {
        if targets.contains(&entry.seq) {
            before.insert(entry.seq, stack.clone());
        }
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
                if targets.contains(&entry.seq) {
                    before.insert(entry.seq, stack.clone());
                }
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

/// Replays one change of the entry `seq` on the held keys: a key back at the value it had
/// before sysprof first set it (or released) is no longer held. A key already held keeps its
/// entry (no copy of the key or of its original value).
fn hold(state: &mut BTreeMap<SysctlKey, Managed>, change: &KeyChange, seq: u64) {
    match state.get_mut(&change.key) {
        Some(held) if change.released || change.after.same_as(&held.original) => {
            state.remove(&change.key);
        }
        Some(held) => {
            held.value = change.after.clone();
            held.set_by = seq;
        }
        // A key the kernel changed as a side effect does not become one sysprof holds (one it
        // holds already moves with it, above).
        None if change.implied || change.released || change.after.same_as(&change.before) => {}
        None => {
            let held = Managed {
                value: change.after.clone(),
                set_by: seq,
                original: change.before.clone(),
            };
            state.insert(change.key.clone(), held);
        }
    }
}

/// Each entry's position by record id.
fn seq_of(entries: &[Entry]) -> HashMap<&str, u64> {
    entries.iter().map(|e| (e.id.as_str(), e.seq)).collect()
}

/// The positions some entry's `restores` names: the only ones whose earlier state a replay
/// needs again.
fn targets(entries: &[Entry], seq_of: &HashMap<&str, u64>) -> HashSet<u64> {
    let restored = entries.iter().filter_map(|e| e.record.restores.as_deref());
    restored.filter_map(|id| seq_of.get(id).copied()).collect()
}
