//! `sysprof import FILE…|--system`: a profile from sysctl.d files (and what `export` shares
//! with it: writing the result and its notes).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::adopt::adopted::{self, Adopted};
use crate::adopt::boot::BootFiles;
use crate::adopt::emit::Item;
use crate::cli::output::{Output, stderr_err};
use crate::cli::render::{self, Diagnostic, Level};
use crate::cli::settings::Settings;
use crate::error::{Error, Result, exit};

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
    let adopted = adopted::imported(&all, &s.tree()?, &s.schema()?, name)?;
    let files: Vec<String> = all.iter().map(|f| f.display().to_string()).collect();
    let extra = serde_json::json!({ "files": files });
    finish(out, &adopted, output, extra)
}

/// Writes the profile (to `output`, or stdout) and its notes (stderr), or one JSON document
/// with `extra`'s fields added.
pub(super) fn finish(
    out: &mut Output,
    adopted: &Adopted,
    output: Option<&Path>,
    mut extra: serde_json::Value,
) -> Result<i32> {
    if let Some(path) = output {
        write_file(path, &adopted.text)?;
    }
    if out.json() {
        let settings: Vec<serde_json::Value> = adopted.items.iter().map(item_json).collect();
        let warnings: Vec<serde_json::Value> = adopted
            .warnings
            .iter()
            .map(|(rule, message)| serde_json::json!({ "rule": rule, "message": message }))
            .collect();
        let doc = serde_json::json!({ "ok": true, "settings": settings, "notes": adopted.notes, "warnings": warnings, "profile": adopted.text });
        if let (Some(all), serde_json::Value::Object(more)) = (doc.as_object(), extra.take()) {
            let mut all = all.clone();
            all.extend(more);
            out.emit(&all)?;
        }
        return Ok(exit::OK);
    }
    if output.is_none() {
        out.plain(&adopted.text)?;
    }
    out.diag(|w| {
        adopted.warnings.iter().try_for_each(|(rule, message)| {
            render::diagnostic(
                w,
                &Diagnostic::new(Level::Warning, message.as_str()).code(rule),
            )
        })
    })?;
    for note in &adopted.notes {
        writeln!(out.err, "note: {note}").map_err(stderr_err)?;
    }
    Ok(exit::OK)
}

fn item_json(item: &Item) -> serde_json::Value {
    let key = item.pattern.clone().unwrap_or_else(|| item.key.to_string());
    serde_json::json!({ "key": key, "value": item.value, "optional": item.optional, "source": item.source })
}

/// Replaces `path` with `text` (0644) by temp file and rename.
fn write_file(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
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
