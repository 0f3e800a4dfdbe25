//! Expanding sysctl.d(5) globs (`profile::pattern::Glob`) against a live tree.
//!
//! [`expand`] lists the matching keys of a live tree through `SysctlTree::list` (read-only,
//! symlinks never followed). Which entries a glob may set is `import`'s business, and the
//! profile's for pattern keys.

use crate::kernel::{EntryKind, SysctlTree};
use crate::profile::key::SysctlKey;
pub use crate::profile::pattern::{GLOB_CHARS, Glob, component_matches, is_glob};

/// Every key of `tree` matching `glob`, in path order.
pub fn expand(glob: &Glob, tree: &SysctlTree) -> Vec<SysctlKey> {
    let mut found = Vec::new();
    walk_glob(tree, glob.components(), &mut Vec::new(), &mut found);
    found
}

fn walk_glob(tree: &SysctlTree, rest: &[String], dir: &mut Vec<String>, out: &mut Vec<SysctlKey>) {
    let Some((pattern, tail)) = rest.split_first() else {
        return;
    };
    let Ok(entries) = tree.list(dir) else {
        return;
    };
    for entry in entries
        .iter()
        .filter(|e| component_matches(pattern, &e.name))
    {
        dir.push(entry.name.clone());
        match (entry.kind, tail.is_empty()) {
            (EntryKind::File, true) => {
                let text: Vec<&str> = dir.iter().map(String::as_str).collect();
                if let Ok(key) = SysctlKey::parse(&text.join("/")) {
                    out.push(key);
                }
            }
            (EntryKind::Dir, false) => walk_glob(tree, tail, dir, out),
            _ => {}
        }
        dir.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> SysctlKey {
        SysctlKey::parse(text).unwrap()
    }

    #[test]
    fn expansion_walks_only_matching_directories() {
        let dir = tempfile::tempdir().unwrap();
        for k in [
            "net.ipv4.conf.all.rp_filter",
            "net.ipv4.conf.eth0.rp_filter",
            "net.ipv4.conf.eth0.arp_ignore",
        ] {
            let path = dir.path().join(key(k).rel_path());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "0\n").unwrap();
        }
        let tree = SysctlTree::open(dir.path()).unwrap();
        let found = expand(&Glob::parse("net.ipv4.conf.*.rp_filter").unwrap(), &tree);
        let names: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "net.ipv4.conf.all.rp_filter",
                "net.ipv4.conf.eth0.rp_filter"
            ]
        );
        assert!(expand(&Glob::parse("net.ipv6.conf.*.x").unwrap(), &tree).is_empty());
    }
}
