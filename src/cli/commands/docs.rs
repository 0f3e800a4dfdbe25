//! `sysprof completions SHELL`, `sysprof man` and `sysprof schema [--json-schema]`: generated
//! from the clap definitions and the schema, never written by hand.

use std::io::Write as _;
use std::path::Path;

use anstyle::Style;
use clap::CommandFactory;

use crate::cli::flags::Cli;
use crate::cli::output::{Output, stdout_err};
use crate::cli::render;
use crate::cli::settings::Settings;
use crate::error::{Error, Result, exit};
use crate::schema::json_schema;

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
pub fn schema(s: &Settings, json_schema: bool, out: &mut Output) -> Result<i32> {
    let schema = s.schema()?;
    if json_schema {
        out.out
            .write_all(json_schema::render(&schema).as_bytes())
            .map_err(stdout_err)?;
        return Ok(exit::OK);
    }
    let kernel = s.target().kernel;
    if out.json() {
        out.emit(&serde_json::json!({ "ok": true, "keys": schema.keys, "rules": schema.rules }))?;
        return Ok(exit::OK);
    }
    let bold = Style::new().bold();
    let mut rows = vec![
        ["KEY", "SHAPE", "DEFAULT", "SCOPE", "CAVEAT"]
            .map(|h| (h.to_owned(), bold))
            .to_vec(),
    ];
    for spec in schema.keys {
        let plain = |t: String| (t, Style::new());
        let default = spec
            .default_for(kernel)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into());
        let caveat: String = spec.caveat.chars().take(60).collect();
        rows.push(vec![
            plain(spec.key.to_owned()),
            plain(format!("{:?}", spec.shape).to_lowercase()),
            plain(default),
            plain(format!("{:?}", spec.scope).to_lowercase()),
            plain(caveat),
        ]);
    }
    render::table(&mut out.out, &rows).map_err(stdout_err)?;
    writeln!(
        out.out,
        "\n{} key entries, {} data rules; `sysprof explain KEY` for everything about one",
        schema.keys.len(),
        schema.rules.len()
    )
    .map_err(stdout_err)?;
    Ok(exit::OK)
}
