//! Keys the kernel keeps exclusive: of `vm.dirty_bytes` and `vm.dirty_ratio` (and the
//! `dirty_background_*` pair) only one is in force, and writing one zeroes the other
//! (admin-guide/sysctl/vm.rst, "dirty_bytes": "only one of them may be specified at a time";
//! mm/page-writeback.c, `dirty_bytes_handler` and `dirty_ratio_handler`). A `*_bytes` key also
//! refuses 0 (its minimum is two pages), so the way back to a ratio is to write the ratio.
//!
//! [`complete`] turns a list of key writes into one the kernel carries out as recorded: the
//! partner a write zeroes is recorded too (`implied`: not written, read back and restored by a
//! rollback), and a write of 0 that a partner's write already does is made implied and put
//! right after it. Without this, rolling back `vm.dirty_bytes` wrote 0 to it (EINVAL) and left
//! `vm.dirty_ratio` at the 0 the apply's write had silently given it.

use crate::change::record::KeyChange;
use crate::error::Result;
use crate::kernel::SysctlTree;
use crate::profile::key::SysctlKey;
use crate::profile::value::Value;

/// The exclusive pairs.
pub const EXCLUSIVE_PAIRS: &[(&str, &str)] = &[
    ("vm.dirty_bytes", "vm.dirty_ratio"),
    ("vm.dirty_background_bytes", "vm.dirty_background_ratio"),
];

/// The key the kernel zeroes when `key` is written, if it is one of a pair.
pub fn partner(key: &SysctlKey) -> Option<SysctlKey> {
    let text = key.to_string();
    EXCLUSIVE_PAIRS.iter().find_map(|&(a, b)| {
        let other = match text.as_str() {
            t if t == a => b,
            t if t == b => a,
            _ => return None,
        };
        SysctlKey::parse(other).ok()
    })
}

/// Completes `changes` (in write order) with the kernel's side effects; see the module doc.
/// Reads the partners of written keys from `tree`.
pub fn complete(tree: &SysctlTree, changes: &mut Vec<KeyChange>) -> Result<()> {
    let zero = Value::from_text("0");
    let mut i = 0;
    while i < changes.len() {
        let Some(other) = partner(&changes[i].key) else {
            i += 1;
            continue;
        };
        if changes[i].implied || changes[i].after.same_as(&zero) {
            i += 1;
            continue;
        }
        match changes.iter().position(|c| c.key == other) {
            // The partner is written to 0 too: the kernel does that; put it right after.
            Some(j) if changes[j].after.same_as(&zero) => {
                let mut zeroed = changes.remove(j);
                zeroed.implied = true;
                let at = if j < i { i } else { i + 1 };
                changes.insert(at, zeroed);
            }
            Some(_) => {}
            None => {
                let before = tree.read(&other)?;
                if !before.same_as(&zero) {
                    let implied = KeyChange {
                        key: other,
                        before,
                        after: zero.clone(),
                        released: false,
                        implied: true,
                    };
                    changes.insert(i + 1, implied);
                }
            }
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, before: &str, after: &str) -> KeyChange {
        KeyChange {
            key: SysctlKey::parse(key).unwrap(),
            before: Value::from_text(before),
            after: Value::from_text(after),
            released: false,
            implied: false,
        }
    }

    fn tree(keys: &[(&str, &str)]) -> (tempfile::TempDir, SysctlTree) {
        let dir = tempfile::tempdir().unwrap();
        for (k, v) in keys {
            let path = dir.path().join(SysctlKey::parse(k).unwrap().rel_path());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, format!("{v}\n")).unwrap();
        }
        let tree = SysctlTree::open(dir.path()).unwrap();
        (dir, tree)
    }

    fn shape(changes: &[KeyChange]) -> Vec<(String, String, bool)> {
        changes
            .iter()
            .map(|c| (c.key.to_string(), c.after.to_string(), c.implied))
            .collect()
    }

    #[test]
    fn a_write_records_the_partner_it_zeroes() {
        let (_d, t) = tree(&[("vm.dirty_bytes", "0"), ("vm.dirty_ratio", "20")]);
        let mut changes = vec![change("vm.dirty_bytes", "0", "100000000")];
        complete(&t, &mut changes).unwrap();
        assert_eq!(
            shape(&changes),
            [
                ("vm.dirty_bytes".into(), "100000000".into(), false),
                ("vm.dirty_ratio".into(), "0".into(), true)
            ]
        );
        assert_eq!(changes[1].before.to_string(), "20");
    }

    #[test]
    fn a_zero_the_partner_s_write_does_is_implied_and_follows_it() {
        // A rollback of the above, in the order the history gives it.
        let (_d, t) = tree(&[("vm.dirty_bytes", "100000000"), ("vm.dirty_ratio", "0")]);
        let mut changes = vec![
            change("vm.dirty_bytes", "100000000", "0"),
            change("vm.dirty_ratio", "0", "20"),
        ];
        complete(&t, &mut changes).unwrap();
        assert_eq!(
            shape(&changes),
            [
                ("vm.dirty_ratio".into(), "20".into(), false),
                ("vm.dirty_bytes".into(), "0".into(), true)
            ]
        );
    }

    #[test]
    fn an_already_zero_partner_and_other_keys_are_left_alone() {
        let (_d, t) = tree(&[("vm.dirty_bytes", "0"), ("vm.dirty_ratio", "0")]);
        let mut changes = vec![
            change("vm.swappiness", "60", "10"),
            change("vm.dirty_bytes", "200000000", "100000000"),
        ];
        complete(&t, &mut changes).unwrap();
        assert_eq!(changes.len(), 2);
        assert!(changes.iter().all(|c| !c.implied));
    }
}
