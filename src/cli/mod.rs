//! The command-line edge: flags → settings → one command → one renderer.
//!
//! `flags` holds what clap parses (`lean` builds only the subcommand that runs); `settings`
//! validates it once into what commands use; `commands` has one short file per verb, each
//! calling the core and handing the result to `render`; `output` owns stdout and stderr.

use std::ffi::OsString;

pub mod commands;
pub mod flags;
pub mod lean;
pub mod output;
pub mod render;
pub mod settings;

use crate::cli::output::Output;
use crate::cli::settings::Settings;

/// Runs sysprof on `args` (argv, program name first); returns the process exit code.
pub fn run(args: Vec<OsString>) -> i32 {
    let cli = match flags::parse(args) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return flags::usage_exit_code(&err);
        }
    };
    let mut out = Output::new(&cli.global);
    let result = Settings::from_flags(&cli.global)
        .and_then(|s| commands::dispatch(&s, &cli.command.0, &mut out));
    match result {
        Ok(code) => code,
        Err(err) => out.fail(&err),
    }
}
