//! Where commands write: results on stdout, diagnostics on stderr, as human text or JSON.
//!
//! Colour codes are always written and the streams (anstream) strip them when colour is off
//! (`--color never`, NO_COLOR, not a terminal). A closed stdout (`sysprof history | head`) ends
//! the command quietly, like other Unix tools.

use std::io::Write;

use anstream::AutoStream;
use serde::Serialize;

use crate::cli::flags::{ColorWhen, Format, Global};
use crate::cli::render;
use crate::error::{Error, Result};

/// The output streams of one command.
pub struct Output {
    /// Results.
    pub out: Box<dyn Write>,
    /// Diagnostics and errors.
    pub err: Box<dyn Write>,
    /// Output format.
    pub format: Format,
}

impl Output {
    /// Streams that strip colour per `--color`, NO_COLOR and TTY detection.
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

    /// Whether JSON was asked for.
    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// Prints a JSON document on stdout.
    pub fn emit<T: Serialize>(&mut self, value: &T) -> Result<()> {
        let text = serde_json::to_string_pretty(value).expect("output serialises");
        writeln!(self.out, "{text}").map_err(stdout_err)
    }

    /// Renders a block of output into memory and writes it to stdout in one go: stdout is
    /// line-buffered, and a report of many lines would otherwise cost a `write(2)` per line.
    pub fn block(
        &mut self,
        render: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<()> {
        let mut block = Vec::new();
        render(&mut block)
            .and_then(|()| self.out.write_all(&block))
            .map_err(stdout_err)
    }

    /// The same for stderr (diagnostics).
    pub fn diag(
        &mut self,
        render: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<()> {
        let mut block = Vec::new();
        render(&mut block)
            .and_then(|()| self.err.write_all(&block))
            .map_err(stderr_err)
    }

    /// Writes text that carries no escape sequence (a rendered profile) to stdout past the
    /// colour-stripping adapter, which would inspect every byte of an export of every key. Both
    /// go through the same `std::io::stdout()`, so the order of output is kept.
    pub fn plain(&mut self, text: &str) -> Result<()> {
        let result = if text.contains('\x1b') {
            self.out.write_all(text.as_bytes())
        } else {
            self.out
                .flush()
                .and_then(|()| std::io::stdout().lock().write_all(text.as_bytes()))
        };
        result.map_err(stdout_err)
    }

    /// Reports a failed command (human text on stderr, or a JSON document on stdout) and
    /// returns its exit code. A closed stdout is not reported: the reader has gone.
    pub fn fail(&mut self, err: &Error) -> i32 {
        if err.is_broken_pipe() {
            return crate::error::exit::OK;
        }
        let _ = self.diag(|w| render::error(w, err));
        if self.json() {
            let doc = serde_json::json!({ "ok": false, "error": err.to_string(), "help": err.help(), "exit_code": err.exit_code(), "findings": err.findings() });
            let _ = self.emit(&doc);
        }
        let _ = self.out.flush();
        err.exit_code()
    }
}

/// An error writing stdout.
pub fn stdout_err(e: std::io::Error) -> Error {
    Error::io("write", "stdout", e)
}

/// An error writing stderr.
pub fn stderr_err(e: std::io::Error) -> Error {
    Error::io("write", "stderr", e)
}
