//! One module per command. Each builds what it needs from the flags, calls the core, and renders
//! the result as human text or JSON. Exit codes come from `error::exit`.

use std::io::Write;
use std::path::Path;

use anstream::AutoStream;
use serde::Serialize;

use crate::cli::render;
use crate::cli::{Cli, ColorWhen, Command, Format, Global};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::schema::Schema;
use crate::schema::validate::{self, Report, Target};

mod apply;
mod boot_check;
mod canary;
mod confirm;
mod diff;
mod docs;
mod doctor;
mod explain;
mod health;
mod history;
mod import;
mod k8s;
mod recover;
mod rollback;
mod rollout;
mod status;
mod validate_cmd;

/// Where a command writes: stdout for results, stderr for diagnostics.
pub struct Io {
    /// Results.
    pub out: Box<dyn Write>,
    /// Diagnostics and errors.
    pub err: Box<dyn Write>,
    /// Output format.
    pub format: Format,
}

impl Io {
    /// Streams that strip color per `--color`, NO_COLOR and TTY detection.
    pub fn new(global: &Global) -> Self {
        let choice = match global.color {
            ColorWhen::Auto => anstream::ColorChoice::Auto,
            ColorWhen::Always => anstream::ColorChoice::Always,
            ColorWhen::Never => anstream::ColorChoice::Never,
        };
        Self {
            out: Box::new(AutoStream::new(std::io::stdout(), choice)),
            err: Box::new(AutoStream::new(std::io::stderr(), choice)),
            format: global.format,
        }
    }

    /// Writes text that carries no escape sequence (a rendered profile) to stdout past the
    /// color-stripping adapter, which would inspect every byte of an export of every key. Both
    /// go through the same `std::io::stdout()`, so the order of output is kept.
    pub fn write_plain(&mut self, text: &str) -> Result<()> {
        let result = if text.contains('\x1b') {
            self.out.write_all(text.as_bytes())
        } else {
            self.out
                .flush()
                .and_then(|()| std::io::stdout().lock().write_all(text.as_bytes()))
        };
        result.map_err(io_err)
    }

    /// Renders a block of output into memory and writes it in one go: stdout is line-buffered,
    /// and a report of many lines would otherwise cost a `write(2)` per line.
    pub fn write_block(
        &mut self,
        render: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<()> {
        let mut block = Vec::new();
        render(&mut block)
            .and_then(|()| self.out.write_all(&block))
            .map_err(io_err)
    }

    /// Whether JSON was asked for.
    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// Prints a JSON document on stdout.
    pub fn emit<T: Serialize>(&mut self, value: &T) -> Result<()> {
        let text = serde_json::to_string_pretty(value).expect("output serialises");
        writeln!(self.out, "{text}").map_err(|e| Error::io("write", "stdout", e))
    }
}

/// Maps an I/O error on stdout/stderr.
pub fn io_err(e: std::io::Error) -> Error {
    Error::io("write", "the terminal", e)
}

/// Runs the command line; returns the exit code.
pub fn run(cli: Cli) -> i32 {
    let mut io = Io::new(&cli.global);
    match dispatch(&cli, &mut io) {
        Ok(code) => code,
        Err(err) => {
            let _ = render::error(&mut io.err, &err);
            if io.json() {
                let _ = io.emit(&serde_json::json!({ "ok": false, "error": err.to_string(), "help": err.help(), "exit_code": err.exit_code() }));
            }
            err.exit_code()
        }
    }
}

fn dispatch(cli: &Cli, io: &mut Io) -> Result<i32> {
    let g = &cli.global;
    match &cli.command.0 {
        Command::Validate { profiles } => validate_cmd::run(g, profiles, io),
        Command::Diff { profile, exit_code } => diff::run(g, profile, *exit_code, io),
        Command::Apply {
            profile,
            dry_run,
            safe,
        } => apply::run(g, profile, *dry_run, safe, io),
        Command::History => history::run(g, io),
        Command::Show { id } => history::show(g, id, io),
        Command::Rollback { to, dry_run } => rollback::run(g, to.as_deref(), *dry_run, io),
        Command::Status => status::run(g, io),
        Command::Recover => recover::run(g, io),
        Command::Explain { name } => explain::run(g, name, io),
        Command::Import {
            files,
            system,
            name,
            output,
        } => import::run(g, files, *system, name, output.as_deref(), io),
        Command::Export {
            prefix,
            non_default,
            name,
            output,
        } => import::export(
            g,
            prefix.as_deref(),
            *non_default,
            name,
            output.as_deref(),
            io,
        ),
        Command::Doctor {
            proc_net,
            conntrack_full,
            port_use,
            close_wait,
            fin_wait2,
            min_count,
        } => {
            let thresholds = crate::diagnose::doctor::Thresholds {
                conntrack_full_pct: *conntrack_full,
                port_use_pct: *port_use,
                close_wait: *close_wait,
                fin_wait2: *fin_wait2,
                min_count: *min_count,
            };
            doctor::run(g, proc_net, &thresholds, io)
        }
        Command::Completions { shell } => docs::completions(*shell, io),
        Command::Man { dir } => docs::man(dir.as_deref(), io),
        Command::Schema { json_schema } => docs::schema(g, *json_schema, io),
        Command::Rollout(command) => rollout::dispatch(g, command, io),
    }
}

/// Loads and validates a profile, rendering findings (human mode) to stderr.
/// Fails with [`Error::Invalid`] when the findings block.
pub fn checked_profile(
    g: &Global,
    schema: &Schema,
    target: &Target,
    path: &Path,
    io: &mut Io,
) -> Result<(Profile, Report)> {
    let profile = Profile::load(path)?;
    let target = target.for_profile(&profile);
    let report = validate::validate(&profile, schema, &target);
    if !io.json() {
        let shown = crate::schema::validate::Report {
            findings: report
                .findings
                .iter()
                .filter(|f| f.severity > crate::schema::Severity::Info)
                .cloned()
                .collect(),
        };
        render::findings(&mut io.err, &profile, &shown).map_err(io_err)?;
    }
    if report.blocks(g.deny_warnings) {
        let errors = report.count(crate::schema::Severity::Error)
            + if g.deny_warnings {
                report.count(crate::schema::Severity::Warning)
            } else {
                0
            };
        return Err(Error::Invalid {
            file: path.display().to_string(),
            errors,
        });
    }
    Ok((profile, report))
}
