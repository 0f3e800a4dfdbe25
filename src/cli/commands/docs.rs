//! `sysprof completions SHELL`, `sysprof man` and `sysprof schema [--json-schema]`: generated
//! from the clap definitions and the schema, never written by hand.

use std::io::Write as _;
use std::path::Path;

use clap::CommandFactory;

use crate::cli::flags::Cli;
use crate::cli::output::{Output, stdout_err};
use crate::cli::render::report;
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
        out.plain(&json_schema::render(&schema))?;
    } else if out.json() {
        out.emit(&serde_json::json!({ "ok": true, "keys": schema.keys, "rules": schema.rules }))?;
    } else {
        let kernel = s.target().kernel;
        out.block(|w| report::schema_table(w, &schema, kernel))?;
    }
    Ok(exit::OK)
}
