//! Drift: keys whose kernel value no longer matches what sysprof last wrote to them.
//!
//! The expected state is what the history leaves sysprof holding (`History::managed`): every key
//! set by an apply still in effect, at the value written. A key that reads differently now was
//! changed by another writer since. Keys a rollback released are no longer sysprof's. This
//! module reads the tree and never writes.

use crate::change::history::History;
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

/// The keys sysprof holds whose current value differs from what it wrote.
pub fn detect(tree: &SysctlTree, history: &History) -> Vec<Drift> {
    history
        .managed()
        .into_iter()
        .filter_map(|(key, held)| {
            let now = tree.read(&key).ok();
            let same = now.as_ref().is_some_and(|n| n.same_as(&held.value));
            (!same).then_some(Drift {
                key,
                expected: held.value,
                now,
                set_by: held.set_by,
            })
        })
        .collect()
}
