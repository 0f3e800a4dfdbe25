//! Exporting the running kernel's values as profile items, for adopting a host as it is.
//!
//! This module walks the tree (`--root`, inside `--netns` when given) under a prefix, reads every
//! settable key and optionally keeps only the keys whose value differs from the schema's default
//! for the target kernel. It reads only; rendering is `emit`'s job, printing the command's.

use crate::emit::{Item, representable};
use crate::error::{Error, Result};
use crate::kernel::{EntryKind, SysctlTree};
use crate::key::SysctlKey;
use crate::schema::{Schema, Version};

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only keys under these components (`net`, `ipv4`); empty = everything.
    pub prefix: Vec<String>,
    /// Only keys whose value differs from the schema default (keys without one are left out).
    pub non_default: Option<Version>,
}

/// The export and what was left out, with reasons.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Export {
    /// Keys and values, in key order.
    #[serde(skip)]
    pub items: Vec<Item>,
    /// Keys without write permission (they cannot be applied).
    pub read_only: usize,
    /// Keys that could not be read (write-only, or refused).
    pub unreadable: Vec<String>,
    /// Keys whose value a profile cannot hold (`010`, control characters, several lines).
    pub unrepresentable: Vec<String>,
    /// With `--non-default`: keys at their default, and keys the schema has no default for.
    pub at_default: usize,
    /// With `--non-default`: keys the schema has no default for.
    pub unknown_default: usize,
}

/// Walks `tree` and collects what `filter` asks for.
pub fn export(tree: &SysctlTree, schema: &Schema, filter: &Filter) -> Result<Export> {
    let mut out = Export::default();
    let mut keys = Vec::new();
    match filter.prefix.split_last() {
        None => walk(tree, &mut Vec::new(), &mut keys, &mut out)?,
        Some((leaf, parent)) => {
            let found = tree
                .list(parent)
                .ok()
                .and_then(|entries| entries.into_iter().find(|e| &e.name == leaf));
            match found {
                Some(e) if e.kind == EntryKind::File => {
                    let key = SysctlKey::parse(&filter.prefix.join("/"))?;
                    keys.push((key, e.mode & 0o222 != 0))
                }
                Some(e) if e.kind == EntryKind::Dir => {
                    walk(tree, &mut filter.prefix.clone(), &mut keys, &mut out)?
                }
                _ => {
                    return Err(Error::Key {
                        key: filter.prefix.join("."),
                        reason: "no such key or directory in this tree".into(),
                    });
                }
            }
        }
    }
    for (key, writable) in keys {
        if !writable {
            out.read_only += 1;
            continue;
        }
        take(tree, schema, filter, key, &mut out);
    }
    Ok(out)
}

/// Parses a prefix such as `net`, `net.ipv4` or `net/ipv4/conf/eth0.100` into components.
pub fn prefix(text: &str) -> Result<Vec<String>> {
    let text = text.trim().trim_end_matches(['.', '/']);
    let separator = if text
        .find(['.', '/'])
        .is_some_and(|i| text.as_bytes()[i] == b'/')
    {
        "/"
    } else {
        "."
    };
    // A one-component prefix is not a key; validate it as the parent of one.
    let key = SysctlKey::parse(&format!("{text}{separator}x"))?;
    let components = key.components();
    Ok(components[..components.len() - 1].to_vec())
}

fn walk(
    tree: &SysctlTree,
    dir: &mut Vec<String>,
    keys: &mut Vec<(SysctlKey, bool)>,
    out: &mut Export,
) -> Result<()> {
    for entry in tree.list(dir)? {
        dir.push(entry.name.clone());
        match entry.kind {
            EntryKind::Dir => walk(tree, dir, keys, out)?,
            EntryKind::File => match SysctlKey::parse(&dir.join("/")) {
                Ok(key) => keys.push((key, entry.mode & 0o222 != 0)),
                Err(_) => out.unrepresentable.push(dir.join("/")),
            },
            EntryKind::Other => {}
        }
        dir.pop();
    }
    Ok(())
}

fn take(tree: &SysctlTree, schema: &Schema, filter: &Filter, key: SysctlKey, out: &mut Export) {
    let text = match tree.read_text(&key) {
        Ok(text) => text,
        Err(_) => return out.unreadable.push(key.to_string()),
    };
    let value = crate::value::Value::from_text(&text);
    if text.trim_end_matches('\n').contains('\n') || !representable(&value) {
        return out.unrepresentable.push(key.to_string());
    }
    if let Some(kernel) = filter.non_default {
        match schema.lookup(&key).and_then(|s| s.default_for(kernel)) {
            Some(default) if default.same_as(&value) => return out.at_default += 1,
            Some(_) => {}
            None => return out.unknown_default += 1,
        }
    }
    out.items.push(Item {
        key,
        value,
        source: None,
        reason: None,
        optional: false,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(keys: &[(&str, &str, u32)]) -> (tempfile::TempDir, SysctlTree) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for (k, v, mode) in keys {
            let path = dir.path().join(SysctlKey::parse(k).unwrap().rel_path());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, v).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
        let tree = SysctlTree::open(dir.path()).unwrap();
        (dir, tree)
    }

    #[test]
    fn exports_settable_keys_under_a_prefix_and_filters_defaults() {
        let (_d, tree) = tree(&[
            ("net.core.somaxconn", "4096\n", 0o644),
            ("net.ipv4.tcp_fin_timeout", "30\n", 0o644),
            ("net.ipv4.tcp_syncookies", "1\n", 0o644),
            ("net.ipv4.tcp_mystery", "7\n", 0o644),
            ("net.ipv4.tcp_weird", "010\n", 0o644),
            ("net.ipv4.tcp_lines", "1\n2\n", 0o644),
            ("net.ipv4.tcp_ro", "1\n", 0o444),
            ("vm.swappiness", "60\n", 0o644),
        ]);
        let schema = Schema::embedded().unwrap();
        let under = |text: &str, non_default: Option<Version>| {
            let filter = Filter {
                prefix: prefix(text).unwrap(),
                non_default,
            };
            export(&tree, &schema, &filter)
        };
        let all = under("net.ipv4", None).unwrap();
        let keys: Vec<String> = all.items.iter().map(|i| i.key.to_string()).collect();
        assert_eq!(
            keys,
            [
                "net.ipv4.tcp_fin_timeout",
                "net.ipv4.tcp_mystery",
                "net.ipv4.tcp_syncookies"
            ]
        );
        assert_eq!(all.read_only, 1);
        assert_eq!(
            all.unrepresentable,
            ["net.ipv4.tcp_lines", "net.ipv4.tcp_weird"]
        );
        assert!(all.unreadable.is_empty());

        let changed = under("net/ipv4", Some(Version(6, 1, 0))).unwrap();
        let keys: Vec<String> = changed.items.iter().map(|i| i.key.to_string()).collect();
        assert_eq!(keys, ["net.ipv4.tcp_fin_timeout"]);
        assert_eq!((changed.at_default, changed.unknown_default), (1, 1));

        assert_eq!(under("vm.swappiness", None).unwrap().items.len(), 1);
        assert_eq!(under("vm", None).unwrap().items.len(), 1);
        assert_eq!(under("net.nope", None).unwrap_err().exit_code(), 3);
        let everything = export(&tree, &schema, &Filter::default()).unwrap();
        assert_eq!(everything.items.len(), 5);
        assert_eq!(prefix("net/ipv4/conf/eth0.100").unwrap()[3], "eth0.100");
        assert!(prefix("../etc").is_err());
    }
}
