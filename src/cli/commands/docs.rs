//! `sysprof completions SHELL`, `sysprof man` and `sysprof schema [--json-schema]`: generated
//! from the clap definitions and the schema, never written by hand.

use std::io::Write as _;
use std::path::Path;

use clap::CommandFactory;

use crate::cli::flags::{Cli, SchemaFilter};
use crate::cli::output::{Output, stdout_err};
use crate::cli::render::report;
use crate::cli::settings::Settings;
use crate::error::{Error, Result, exit};
use crate::schema::{KeySpec, json_schema};

/// Prints completions for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell, out: &mut Output) -> Result<i32> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "sysprof", &mut script);
    out.out.write_all(&script).map_err(stdout_err)?;
    Ok(exit::OK)
}

/// Prints the man page, or writes one page per command into `dir`.
pub fn man(dir: Option<&Path>, out: &mut Output) -> Result<i32> {
    let cmd = Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
            clap_mangen::generate_to(cmd, dir)
                .map_err(|e| Error::io("write man pages to", dir, e))?;
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .map_err(stdout_err)?;
            out.out.write_all(&page).map_err(stdout_err)?;
        }
    }
    Ok(exit::OK)
}

/// Prints the key catalogue as a table, or the profile format as JSON Schema.
pub fn schema(
    s: &Settings,
    json_schema: bool,
    filter: &SchemaFilter,
    out: &mut Output,
) -> Result<i32> {
    let schema = s.schema()?;
    if json_schema {
        out.plain(&json_schema::render(&schema))?;
        return Ok(exit::OK);
    }
    let keys: Vec<&KeySpec> = schema.keys.iter().filter(|k| matches(filter, k)).collect();
    if out.json() {
        out.emit(&serde_json::json!({ "ok": true, "keys": keys, "rules": schema.rules }))?;
    } else {
        let kernel = s.target().kernel;
        out.block(|w| report::schema_table(w, &keys, schema.keys.len(), kernel))?;
    }
    Ok(exit::OK)
}

/// Whether a key entry passes every filter given.
fn matches(filter: &SchemaFilter, spec: &KeySpec) -> bool {
    // `net.ipv4` takes whole components (not net.ipv4x); `vm.dirty_` any key it starts.
    let prefix = filter.prefix.as_deref().is_none_or(|p| {
        let rest = spec.key.strip_prefix(p);
        match p.ends_with(|c: char| c.is_ascii_alphanumeric()) {
            true => rest.is_some_and(|r| r.is_empty() || r.starts_with('.')),
            false => rest.is_some(),
        }
    });
    let scope = filter.scope.is_none_or(|s| spec.scope == s);
    let search = filter.search.as_deref().is_none_or(|word| {
        let word = word.to_lowercase();
        let hay = |t: &str| t.to_lowercase().contains(&word);
        hay(spec.key) || hay(spec.caveat) || spec.sources.iter().any(|s| hay(s))
    });
    prefix && scope && search
}
