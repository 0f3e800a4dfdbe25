//! Exporting the running kernel's values as profile items, for adopting a host as it is.
//!
//! This module walks the tree (`--root`, inside `--netns` when given) under a prefix, reads every
//! settable key and optionally keeps only the keys whose value differs from the schema's default
//! for the target kernel. It reads only; rendering is `emit`'s job, printing the command's.

use crate::adopt::emit::{Item, representable};
use crate::error::{Error, Result};
use crate::kernel::{EntryKind, Found, SysctlTree};
use crate::profile::key::SysctlKey;
use crate::schema::{KeySpec, Schema, Scope, Version};

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only keys under these components (`net`, `ipv4`); empty = everything.
    pub prefix: Vec<String>,
    /// Only keys whose value differs from the schema default (keys without one are left out).
    pub non_default: Option<Version>,
    /// Exporting a child network namespace: only keys that belong to it (a host-wide key seen
    /// from inside a namespace is the host's, and applying it there would change the host).
    pub child_netns: bool,
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
    /// In a child network namespace: keys that are not per namespace (the host's).
    pub host_wide: usize,
    /// Positions in `items` of the keys the schema does not describe.
    #[serde(skip)]
    pub unknown: Vec<usize>,
}

/// Walks `tree` and collects what `filter` asks for.
pub fn export(tree: &SysctlTree, schema: &Schema, filter: &Filter) -> Result<Export> {
    let mut out = Export::default();
    let Some((leaf, parent)) = filter.prefix.split_last() else {
        tree.walk(&[], &mut |path, found| {
            take(schema, filter, path, found, &mut out)
        })?;
        return Ok(out);
    };
    let found = tree
        .list(parent)
        .ok()
        .and_then(|entries| entries.into_iter().find(|e| &e.name == leaf));
    match found {
        Some(e) if e.kind == EntryKind::File => {
            let key = SysctlKey::parse(&filter.prefix.join("/"))?;
            let found = match tree.read_text(&key) {
                _ if e.mode & 0o222 == 0 => Found::ReadOnly,
                Ok(text) => Found::Text(text),
                Err(Error::Kernel { fault, .. }) => Found::Unreadable(fault),
                Err(e) => return Err(e),
            };
            take(schema, filter, key.components(), found, &mut out);
        }
        Some(e) if e.kind == EntryKind::Dir => {
            tree.walk(&filter.prefix, &mut |path, found| {
                take(schema, filter, path, found, &mut out)
            })?;
        }
        _ => {
            return Err(Error::Key {
                key: filter.prefix.join("."),
                reason: "no such key or directory in this tree".into(),
            });
        }
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

/// Whether a key belongs to a child network namespace: the catalogue (its entry `spec`) says
/// it is per namespace; a key it does not describe counts when it is under `net`.
fn per_netns(spec: Option<&KeySpec>, key: &SysctlKey) -> bool {
    match spec {
        Some(spec) => spec.scope == Scope::Netns,
        None => key.components().first().is_some_and(|c| c == "net"),
    }
}

/// Sorts one walked file into the export or one of the left-out counts.
fn take(schema: &Schema, filter: &Filter, path: &[String], found: Found, out: &mut Export) {
    let Ok(key) = SysctlKey::from_components(path.to_vec()) else {
        return out.unrepresentable.push(path.join("/"));
    };
    let text = match found {
        Found::Text(text) => text,
        Found::ReadOnly => return out.read_only += 1,
        Found::Unreadable(_) => return out.unreadable.push(key.to_string()),
    };
    // The key's entry, looked up once and only when needed (a binary search per key).
    let entry = std::cell::OnceCell::new();
    let spec = || *entry.get_or_init(|| schema.lookup(&key));
    if filter.child_netns && !per_netns(spec(), &key) {
        return out.host_wide += 1;
    }
    let value = crate::profile::value::Value::from_text(&text);
    if text.trim_end_matches('\n').contains('\n') || !representable(&value) {
        return out.unrepresentable.push(key.to_string());
    }
    if let Some(kernel) = filter.non_default {
        match spec().and_then(|s| s.default_for(kernel)) {
            Some(default) if default.same_as(&value) => return out.at_default += 1,
            Some(_) => {}
            None => return out.unknown_default += 1,
        }
    }
    if spec().is_none() {
        out.unknown.push(out.items.len());
    }
    out.items.push(Item {
        key,
        value,
        source: None,
        reason: None,
        optional: false,
        pattern: None,
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
                child_netns: false,
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
