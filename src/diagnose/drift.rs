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

/// Where the kernel, the persisted file and the history do not describe one state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Disagreement {
    /// The key.
    pub key: SysctlKey,
    /// What is wrong, in words.
    pub what: String,
}

/// Compares the persisted file (`text`, `None` when absent) with the kernel and with what
/// sysprof holds: a file line the kernel does not hold would change the key at boot; a key
/// sysprof holds that the file lacks (or lists differently) would be lost at boot.
pub fn disagreements(
    tree: &SysctlTree,
    history: &History,
    file: &str,
    text: Option<&str>,
) -> Vec<Disagreement> {
    use crate::adopt::import::{self, Name};
    let lines = text
        .and_then(|t| import::parse(t, file).ok())
        .unwrap_or_default();
    let mut persisted = std::collections::BTreeMap::new();
    for entry in lines {
        if let (Name::Key(key), Some(value)) = (entry.name, entry.value) {
            persisted.insert(key, Value::from_text(&value));
        }
    }
    let mut out = Vec::new();
    for (key, value) in &persisted {
        match tree.read(key) {
            Ok(now) if now.same_as(value) => {}
            Ok(now) => out.push(Disagreement {
                key: key.clone(),
                what: format!(
                    "the kernel has {now}, the persisted file {value}: boot would change it"
                ),
            }),
            Err(_) => {}
        }
    }
    for (key, held) in history.managed() {
        match persisted.get(&key) {
            Some(value) if value.same_as(&held.value) => {}
            Some(value) => out.push(Disagreement {
                key,
                what: format!(
                    "sysprof set {}, the persisted file says {value}",
                    held.value
                ),
            }),
            None => out.push(Disagreement {
                key,
                what: format!(
                    "sysprof set {} but the persisted file does not list it: a reboot loses it",
                    held.value
                ),
            }),
        }
    }
    out
}
