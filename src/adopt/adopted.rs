//! Profiles made from what a host already has: sysctl.d files (`import`) and the running
//! kernel (`export`), with notes on what the profile cannot carry or what apply will refuse.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::adopt::emit::{self, Header, Item};
use crate::adopt::export::{self, Export, Filter};
use crate::adopt::import::{Entry, Name, Options, Resolution};
use crate::error::Result;
use crate::kernel::SysctlTree;
use crate::profile::key::SysctlKey;
use crate::schema::Schema;

/// A profile's text, the settings in it and notes for the operator.
#[derive(Debug)]
pub struct Adopted {
    /// The profile YAML.
    pub text: String,
    /// Its settings.
    pub items: Vec<Item>,
    /// What the operator should know (one line each).
    pub notes: Vec<String>,
    /// What was imported differently from how `sysctl -p` reads it: (rule id, message).
    pub warnings: Vec<(&'static str, String)>,
}

/// A profile from sysctl.d files, read in order (later files win), globs expanded against
/// `tree`.
pub fn imported(
    files: &[PathBuf],
    tree: &SysctlTree,
    schema: &Schema,
    name: &str,
) -> Result<Adopted> {
    let options = Options::read(files)?;
    let resolved = options.resolve(tree);
    // A glob stays one pattern key (written where its first match falls), so the profile
    // does not freeze this host's interface names; the keys it matches here are checked.
    // A glob that a `-key` exclusion keeps off one of its keys is written as the keys it sets
    // (a profile has no exclusions).
    let frozen = globs_with_exclusions(&options, &resolved);
    let mut seen_globs = std::collections::HashSet::new();
    let items: Vec<Item> = resolved
        .settings
        .iter()
        .filter_map(|(key, imported)| {
            let pattern = imported.glob.clone().filter(|g| !frozen.contains(g));
            if pattern
                .as_ref()
                .is_some_and(|g| !seen_globs.insert(g.clone()))
            {
                return None;
            }
            let source = match (&imported.glob, &pattern) {
                (Some(glob), None) => format!("{} ({glob})", imported.at),
                _ => imported.at.to_string(),
            };
            Some(Item {
                key: key.clone(),
                value: imported.value.clone(),
                source: Some(source),
                reason: None,
                optional: imported.optional,
                pattern,
            })
        })
        .collect();
    let mut notes: Vec<String> = resolved
        .unmatched
        .iter()
        .map(|e| format!("{}: {} matches no key here", e.at, e.name))
        .collect();
    notes.extend(items.iter().filter(|i| !tree.exists(&i.key)).map(|i| {
        let what = match i.optional {
            true => "skipped by apply (optional)",
            false => "apply will fail unless it exists there",
        };
        let at = i.source.as_deref().unwrap_or("");
        format!("{at}: {} does not exist here; {what}", i.key)
    }));
    let unknown: Vec<&SysctlKey> = items
        .iter()
        .filter(|i| schema.lookup(&i.key).is_none())
        .map(|i| &i.key)
        .collect();
    notes.extend(unknown_to_schema(&unknown));
    let header = Header {
        name: name.to_owned(),
        description: Some(format!(
            "Imported from {} sysctl file(s) by sysprof import.",
            files.len()
        )),
        comments: std::iter::once("Imported by `sysprof import` from, in order:".to_owned())
            .chain(files.iter().map(|f| format!("  {}", f.display())))
            .collect(),
    };
    let text = emit::profile(&header, &items);
    let warnings = options
        .entries()
        .iter()
        .filter_map(Entry::inline_comment_warning)
        .map(|w| (crate::adopt::import::INLINE_COMMENT, w))
        .collect();
    Ok(Adopted {
        text,
        items,
        notes,
        warnings,
    })
}

/// The globs of `options` (as written) that an exclusion keeps off one of their keys.
fn globs_with_exclusions(
    options: &Options,
    resolved: &Resolution,
) -> std::collections::HashSet<String> {
    let excluded = resolved.excluded.iter().filter_map(|e| match &e.name {
        Name::Key(key) => Some(key),
        Name::Glob(_) => None,
    });
    let excluded: Vec<&SysctlKey> = excluded.collect();
    options
        .entries()
        .iter()
        .filter_map(|e| match &e.name {
            Name::Glob(g) if excluded.iter().any(|k| g.matches(k)) => Some(g.to_string()),
            _ => None,
        })
        .collect()
}

/// A profile of the running values under `filter`; `scope` is the prefix as the user wrote it,
/// `netns` the namespace the values come from.
pub fn exported(
    tree: &SysctlTree,
    schema: &Schema,
    filter: &Filter,
    name: &str,
    scope: Option<&str>,
    netns: Option<&str>,
) -> Result<(Adopted, Export)> {
    let mut found = export::export(tree, schema, filter)?;
    let mut notes = vec![format!(
        "{} key(s) exported; {} read-only and {} unreadable left out",
        found.items.len(),
        found.read_only,
        found.unreadable.len()
    )];
    if found.host_wide > 0 {
        notes.push(format!(
            "{} host-wide key(s) left out: seen from a network namespace they are the host's",
            found.host_wide
        ));
    }
    if !found.unrepresentable.is_empty() {
        let left = found.unrepresentable.join(", ");
        notes.push(format!(
            "left out (a profile cannot hold the value): {left}"
        ));
    }
    if let Some(kernel) = filter.non_default {
        notes.push(format!(
            "--non-default for kernel {kernel}: {} key(s) at their default, {} without a known default left out",
            found.at_default, found.unknown_default
        ));
    }
    let unknown: Vec<&SysctlKey> = found.unknown.iter().map(|&i| &found.items[i].key).collect();
    notes.extend(unknown_to_schema(&unknown));
    let scope = scope.unwrap_or("every key");
    let netns = netns
        .map(|n| format!(" in network namespace {n}"))
        .unwrap_or_default();
    let header = Header {
        name: name.to_owned(),
        description: Some(format!(
            "Exported from {} ({scope}) by sysprof export.",
            tree.root().display()
        )),
        comments: vec![format!(
            "Exported by `sysprof export`{netns}: the running values, for adopting this host as it is."
        )],
    };
    let text = emit::profile(&header, &found.items);
    let adopted = Adopted {
        text,
        items: std::mem::take(&mut found.items),
        notes,
        warnings: Vec::new(),
    };
    Ok((adopted, found))
}

/// A note naming the keys `validate` will refuse as unknown (not in `schema`), if any.
fn unknown_to_schema(unknown: &[&SysctlKey]) -> Option<String> {
    if unknown.is_empty() {
        return None;
    }
    // One string for the whole list: an export of every key names hundreds.
    let mut note = format!(
        "{} key(s) unknown to the schema; validate and apply refuse them until a --schema dir describes them: ",
        unknown.len()
    );
    for (i, key) in unknown.iter().enumerate() {
        let separator = if i == 0 { "" } else { ", " };
        write!(note, "{separator}{key}").ok();
    }
    Some(note)
}
