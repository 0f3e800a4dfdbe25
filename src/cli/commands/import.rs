//! `sysprof import FILE…|--system`: a profile from sysctl.d files (and the helpers `export`
//! shares: notes, JSON items, writing the result).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::adopt::boot::BootFiles;
use crate::adopt::emit::{self, Header, Item};
use crate::adopt::import::Options;
use crate::cli::output::{Output, stdout_err};
use crate::cli::settings::Settings;

use crate::error::{Error, Result, exit};
use crate::schema::Schema;

/// Imports sysctl.d files into a profile.
pub fn run(
    s: &Settings,
    files: &[PathBuf],
    system: bool,
    name: &str,
    output: Option<&Path>,
    out: &mut Output,
) -> Result<i32> {
    let mut all = Vec::new();
    if system {
        let root = s.boot_root.clone().unwrap_or_else(|| PathBuf::from("/"));
        all.extend(BootFiles::under(&root).files()?);
    }
    all.extend(files.iter().cloned());
    let options = Options::read(&all)?;
    let tree = s.tree()?;
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
    notes.extend(unknown_to_schema(&s.schema()?, &items));
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
    finish(out, &text, output, &notes, summary)
}

pub(super) fn unknown_to_schema(schema: &Schema, items: &[Item]) -> Option<String> {
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

pub(super) fn item_json(item: &Item) -> serde_json::Value {
    serde_json::json!({ "key": item.key, "value": item.value, "optional": item.optional, "source": item.source })
}

/// Writes the profile (stdout or `--output`), notes to stderr, or the JSON summary (built only
/// when asked for: for every key of a host it costs more than the export itself).
pub(super) fn finish(
    out: &mut Output,
    text: &str,
    output: Option<&Path>,
    notes: &[String],
    summary: impl FnOnce() -> serde_json::Value,
) -> Result<i32> {
    if let Some(path) = output {
        write_file(path, text)?;
    }
    if out.json() {
        out.emit(&summary())?;
        return Ok(exit::OK);
    }
    if output.is_none() {
        out.plain(text)?;
    }
    for note in notes {
        writeln!(out.err, "note: {note}").map_err(stdout_err)?;
    }
    Ok(exit::OK)
}

pub(super) fn write_file(path: &Path, text: &str) -> Result<()> {
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
