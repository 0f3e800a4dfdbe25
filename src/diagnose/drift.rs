//! Drift: keys whose kernel value no longer matches what sysprof last wrote to them.
//!
//! The expected state is the history replayed in order: for every key any record changed, the
//! value of the newest record that changed it (an apply's new value, a rollback's restored
//! value). A key that reads differently now was changed by another writer since. This module
//! reads the tree and never writes.

use std::collections::BTreeMap;

use crate::change::history::Entry;
use crate::kernel::SysctlTree;
use crate::profile::key::SysctlKey;
use crate::profile::value::Value;

/// One drifted key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Drift {
    /// The key.
    pub key: SysctlKey,
    /// What sysprof last wrote.
    pub expected: Value,
    /// What the kernel has now (`None`: unreadable or gone).
    pub now: Option<Value>,
    /// The history entry that wrote `expected`.
    pub set_by: u64,
}

/// Key → (value, seq) as the history leaves it.
pub fn expected(entries: &[Entry]) -> BTreeMap<SysctlKey, (Value, u64)> {
    let mut state = BTreeMap::new();
    for entry in entries {
        for change in &entry.record.changes {
            state.insert(change.key.clone(), (change.after.clone(), entry.seq));
        }
    }
    state
}

/// The keys whose current value differs from [`expected`].
pub fn detect(tree: &SysctlTree, entries: &[Entry]) -> Vec<Drift> {
    expected(entries)
        .into_iter()
        .filter_map(|(key, (expected, set_by))| {
            let now = tree.read(&key).ok();
            let same = now.as_ref().is_some_and(|n| n.same_as(&expected));
            (!same).then_some(Drift {
                key,
                expected,
                now,
                set_by,
            })
        })
        .collect()
}
