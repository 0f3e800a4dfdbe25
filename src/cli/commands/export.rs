//! `sysprof export`: the running kernel's values as a profile.

use std::path::Path;

use super::import::finish;
use crate::adopt::adopted;
use crate::adopt::export::{self, Filter};
use crate::cli::output::Output;
use crate::cli::settings::Settings;
use crate::error::Result;

/// Exports the running kernel's values (under `prefix`) as a profile.
pub fn run(
    s: &Settings,
    prefix: Option<&str>,
    non_default: bool,
    name: &str,
    output: Option<&Path>,
    out: &mut Output,
) -> Result<i32> {
    let tree = s.tree()?;
    let filter = Filter {
        prefix: prefix.map(export::prefix).transpose()?.unwrap_or_default(),
        non_default: non_default.then_some(s.target().kernel),
        child_netns: s.netns.is_some(),
    };
    let netns = s.netns.as_deref();
    let (adopted, found) = adopted::exported(&tree, &s.schema()?, &filter, name, prefix, netns)?;
    let done = finish(
        out,
        &adopted,
        output,
        serde_json::json!({ "left_out": found }),
    );
    // The process exits next: freeing every key and value of a whole-host export one by one
    // would cost a quarter of the command's own CPU time (callgrind), for nothing.
    std::mem::forget((adopted, found));
    done
}
