//! `sysprof export`: the running kernel's values as a profile.

use std::path::Path;

use super::import::{finish, item_json, unknown_to_schema};
use crate::adopt::emit::{self, Header};
use crate::adopt::export::{self, Filter};
use crate::cli::output::Output;
use crate::cli::settings::Settings;
use crate::error::Result;

/// Exports the running kernel's values as a profile.
pub fn run(
    s: &Settings,
    prefix: Option<&str>,
    non_default: bool,
    name: &str,
    output: Option<&Path>,
    out: &mut Output,
) -> Result<i32> {
    let tree = s.tree()?;
    let schema = s.schema()?;
    let kernel = s.target().kernel;
    let filter = Filter {
        prefix: prefix.map(export::prefix).transpose()?.unwrap_or_default(),
        non_default: non_default.then_some(kernel),
    };
    let found = export::export(&tree, &schema, &filter)?;
    let mut notes = vec![format!(
        "{} key(s) exported; {} read-only and {} unreadable left out",
        found.items.len(),
        found.read_only,
        found.unreadable.len()
    )];
    if !found.unrepresentable.is_empty() {
        notes.push(format!(
            "left out (a profile cannot hold the value): {}",
            found.unrepresentable.join(", ")
        ));
    }
    if non_default {
        notes.push(format!(
            "--non-default for kernel {kernel}: {} key(s) at their default, {} without a known default left out",
            found.at_default, found.unknown_default
        ));
    }
    notes.extend(unknown_to_schema(&schema, &found.items));
    let scope = prefix.unwrap_or("every key");
    let header = Header {
        name: name.to_owned(),
        description: Some(format!(
            "Exported from {} ({scope}) by sysprof export.",
            tree.root().display()
        )),
        comments: vec![format!(
            "Exported by `sysprof export`{}: the running values, for adopting this host as it is.",
            s.netns
                .as_ref()
                .map(|n| format!(" in network namespace {n}"))
                .unwrap_or_default()
        )],
    };
    let text = emit::profile(&header, &found.items);
    let summary = || {
        let settings: Vec<serde_json::Value> = found.items.iter().map(item_json).collect();
        serde_json::json!({ "ok": true, "left_out": found, "settings": settings, "notes": notes, "profile": text })
    };
    finish(out, &text, output, &notes, summary)
}
