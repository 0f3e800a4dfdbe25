//! `sysprof import FILE…|--system` and `sysprof export`: profiles from sysctl.d files and from
//! the running kernel.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{Io, io_err};
use crate::adopt::boot::BootFiles;
use crate::adopt::emit::{self, Header, Item};
use crate::adopt::export::{self, Filter};
use crate::adopt::import::Options;
use crate::cli::Global;
use crate::error::{Error, Result, exit};
use crate::kernel::SysctlTree;
use crate::schema::Schema;

/// Imports sysctl.d files into a profile.
pub fn run(
    g: &Global,
    files: &[PathBuf],
    system: bool,
    name: &str,
    output: Option<&Path>,
    io: &mut Io,
) -> Result<i32> {
    let mut all = Vec::new();
    if system {
        let root = g.boot_root.clone().unwrap_or_else(|| PathBuf::from("/"));
        all.extend(BootFiles::under(&root).files()?);
    }
    all.extend(files.iter().cloned());
    let options = Options::read(&all)?;
    let tree = open_tree(g)?;
    let resolved = options.resolve(&tree);
    let items: Vec<Item> = resolved
        .settings
        .iter()
        .map(|(key, imported)| Item {
            key: key.clone(),
            value: imported.value.clone(),
            source: Some(match &imported.glob {
                Some(glob) => format!("{} ({glob})", imported.at),
                None => imported.at.to_string(),
            }),
            reason: None,
            optional: imported.optional,
        })
        .collect();
    let mut notes: Vec<String> = resolved
        .unmatched
        .iter()
        .map(|e| format!("{}: {} matches no key here", e.at, e.name))
        .collect();
    notes.extend(items.iter().filter(|i| !tree.exists(&i.key)).map(|i| {
        let what = if i.optional {
            "skipped by apply (optional)"
        } else {
            "apply will fail unless it exists there"
        };
        format!(
            "{}: {} does not exist here; {what}",
            i.source.as_deref().unwrap_or(""),
            i.key
        )
    }));
    notes.extend(unknown_to_schema(&g.load_schema()?, &items));
    let header = Header {
        name: name.to_owned(),
        description: Some(format!(
            "Imported from {} sysctl file(s) by sysprof import.",
            all.len()
        )),
        comments: std::iter::once("Imported by `sysprof import` from, in order:".to_owned())
            .chain(all.iter().map(|f| format!("  {}", f.display())))
            .collect(),
    };
    let text = emit::profile(&header, &items);
    let summary = || {
        let files: Vec<String> = all.iter().map(|f| f.display().to_string()).collect();
        let settings: Vec<serde_json::Value> = items.iter().map(item_json).collect();
        serde_json::json!({ "ok": true, "files": files, "settings": settings, "notes": notes, "profile": text })
    };
    finish(io, &text, output, &notes, summary)
}

/// Exports the running kernel's values as a profile.
pub fn export(
    g: &Global,
    prefix: Option<&str>,
    non_default: bool,
    name: &str,
    output: Option<&Path>,
    io: &mut Io,
) -> Result<i32> {
    let tree = open_tree(g)?;
    let schema = g.load_schema()?;
    let kernel = g.target().kernel;
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
            g.netns
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
    finish(io, &text, output, &notes, summary)
}

/// A note naming the keys `validate` will refuse as unknown, if any.
fn unknown_to_schema(schema: &Schema, items: &[Item]) -> Option<String> {
    use std::fmt::Write as _;
    let unknown: Vec<&Item> = items
        .iter()
        .filter(|i| schema.lookup(&i.key).is_none())
        .collect();
    if unknown.is_empty() {
        return None;
    }
    // One string for the whole list: an export of every key names hundreds.
    let mut note = format!(
        "{} key(s) unknown to the schema; validate and apply refuse them until a --schema dir describes them: ",
        unknown.len()
    );
    for (i, item) in unknown.iter().enumerate() {
        let separator = if i == 0 { "" } else { ", " };
        write!(note, "{separator}{}", item.key).ok();
    }
    Some(note)
}

fn open_tree(g: &Global) -> Result<SysctlTree> {
    if let Some(ns) = &g.netns {
        crate::kernel::netns::enter(ns)?;
    }
    SysctlTree::open(&g.root)
}

fn item_json(item: &Item) -> serde_json::Value {
    serde_json::json!({ "key": item.key, "value": item.value, "optional": item.optional, "source": item.source })
}

/// Writes the profile (stdout or `--output`), notes to stderr, or the JSON summary (built only
/// when asked for: for every key of a host it costs more than the export itself).
fn finish(
    io: &mut Io,
    text: &str,
    output: Option<&Path>,
    notes: &[String],
    summary: impl FnOnce() -> serde_json::Value,
) -> Result<i32> {
    if let Some(path) = output {
        write_file(path, text)?;
    }
    if io.json() {
        io.emit(&summary())?;
        return Ok(exit::OK);
    }
    if output.is_none() {
        io.write_plain(text)?;
    }
    for note in notes {
        writeln!(io.err, "note: {note}").map_err(io_err)?;
    }
    Ok(exit::OK)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    use std::os::unix::fs::PermissionsExt;
    let mut temp = tempfile::Builder::new()
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temp file in", dir, e))?;
    temp.write_all(text.as_bytes())
        .and_then(|_| temp.as_file().sync_all())
        .map_err(|e| Error::io("write", path, e))?;
    temp.persist(path)
        .map_err(|e| Error::io("write", path, e.error))?;
    Ok(())
}
