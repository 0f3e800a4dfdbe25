//! Human output. One diagnostic renderer for everything that reports a problem — validation
//! findings, profile load errors, boot-override warnings, doctor's findings, any error — plus
//! aligned tables (`tables`).
//!
//! A [`Diagnostic`] renders like a compiler message:
//!
//! ```text
//! warning[tw-reuse-pod]: net.ipv4.tcp_tw_reuse must not be enabled in a pod
//!   --> profiles/k8s-pod.yaml:12:3
//!    |
//! 12 |   net.ipv4.tcp_tw_reuse: 1
//!    |   ^^^^^^^^^^^^^^^^^^^^^
//!   = help: leave it at the default
//!   = sources: seed:000
//! ```
//!
//! Colour codes are always written; the caller's stream strips them when colour is off.
//! JSON output does not come through here.

use std::io::{self, Write};

use anstyle::{AnsiColor, Style};

use crate::adopt::boot::Override;
use crate::change::persist::FILE_NAME;
use crate::diagnose::doctor::{Check, Verdict};
use crate::error::{Error, Location, MAX_ECHO, MAX_MESSAGE, shorten_to};
use crate::profile::Profile;
use crate::schema::Severity;
use crate::schema::finding::{Finding, Report};

pub mod applied;
pub mod manifests;
pub mod report;
pub mod tables;

pub use tables::{history, plan, record, table};

/// Bold.
pub const BOLD: Style = Style::new().bold();
/// Dimmed.
pub const DIM: Style = Style::new().dimmed();
/// Errors.
pub const RED: Style = AnsiColor::Red.on_default().bold();
/// Warnings.
pub const YELLOW: Style = AnsiColor::Yellow.on_default().bold();
/// Success.
pub const GREEN: Style = AnsiColor::Green.on_default();
/// Notes.
pub const CYAN: Style = AnsiColor::Cyan.on_default().bold();
/// Locations and carets' gutters.
pub const BLUE: Style = AnsiColor::Blue.on_default().bold();

/// `text` in `style`.
pub fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

/// How serious a diagnostic is; decides its word and colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `error`.
    Error,
    /// `warning`.
    Warning,
    /// `info`.
    Info,
    /// `n/a`: a check that could not run here.
    Unavailable,
    /// `ok`: a check that found nothing.
    Ok,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Info => "info",
            Self::Unavailable => "n/a",
            Self::Ok => "ok",
        }
    }

    /// The colour of the word.
    pub fn style(self) -> Style {
        match self {
            Self::Error => RED,
            Self::Warning => YELLOW,
            Self::Info => CYAN,
            Self::Unavailable => DIM,
            Self::Ok => GREEN,
        }
    }
}

/// One message for a person: what, where, and what to do.
#[derive(Debug, Clone)]
pub struct Diagnostic<'a> {
    /// How serious.
    pub level: Level,
    /// The rule or check id, shown as `level[code]`.
    pub code: Option<&'a str>,
    /// One sentence.
    pub message: String,
    /// Where, if in a file.
    pub at: Option<&'a Location>,
    /// The line `at` points into, for the caret.
    pub snippet: Option<&'a str>,
    /// Labelled lines under the message (`evidence`, `= fix`, `= help`, `= sources`), in order.
    pub notes: Vec<(&'static str, String)>,
}

impl<'a> Diagnostic<'a> {
    /// A bare diagnostic.
    pub fn new(level: Level, message: impl Into<String>) -> Self {
        Self {
            level,
            code: None,
            message: message.into(),
            at: None,
            snippet: None,
            notes: Vec::new(),
        }
    }

    /// With a code.
    pub fn code(mut self, code: &'a str) -> Self {
        self.code = Some(code);
        self
    }

    /// With a location and the source line it points into.
    pub fn at(mut self, at: Option<&'a Location>, snippet: Option<&'a str>) -> Self {
        self.at = at;
        self.snippet = snippet;
        self
    }

    /// With a labelled line (`help` renders `= help: …`; `evidence` renders `evidence: …`).
    pub fn note(mut self, label: &'static str, text: impl Into<String>) -> Self {
        self.notes.push((label, text.into()));
        self
    }
}

/// What a cut-short last history line means, and that the next mutating command mends it.
pub fn torn_tail(tail: &str) -> String {
    format!(
        "TORN history tail {tail:?}: a crash or damage cut the last line of history.jsonl short; the next mutating command (or `sysprof recover`) restores a committed entry from records/ or drops an unfinished append"
    )
}

/// Writes one diagnostic.
pub fn diagnostic(out: &mut dyn Write, d: &Diagnostic) -> io::Result<()> {
    let head = match d.code {
        Some(code) => format!("{}[{code}]", d.level.word()),
        None => d.level.word().to_owned(),
    };
    let message = paint(BOLD, &shorten_to(&d.message, MAX_MESSAGE));
    writeln!(
        out,
        "{}{} {message}",
        paint(d.level.style(), &head),
        paint(BOLD, ":")
    )?;
    if let Some(at) = d.at {
        writeln!(out, "  {} {at}", paint(BLUE, "-->"))?;
        if let Some(line) = d.snippet {
            caret(out, at, line, d.level.style())?;
        }
    }
    for (label, text) in &d.notes {
        match *label {
            "evidence" => writeln!(out, "  evidence: {text}")?,
            "sources" => writeln!(out, "  {} {}", paint(DIM, "= sources:"), paint(DIM, text))?,
            label => writeln!(out, "  {} {text}", paint(BOLD, &format!("= {label}:")))?,
        }
    }
    Ok(())
}

/// The source line with a caret under the key at `at` (up to the `:` that ends a YAML key).
fn caret(out: &mut dyn Write, at: &Location, line: &str, style: Style) -> io::Result<()> {
    let number = at.line.to_string();
    let pad = " ".repeat(number.len());
    let width = line
        .chars()
        .skip(at.col - 1)
        .take_while(|c| *c != ':')
        .count()
        .clamp(1, MAX_ECHO);
    // A huge key or value is shown up to a little past the caret, never whole.
    let line = shorten_to(line, at.col - 1 + width + MAX_ECHO);
    writeln!(out, "  {pad} {}", paint(BLUE, "|"))?;
    writeln!(
        out,
        "  {} {} {line}",
        paint(BLUE, &number),
        paint(BLUE, "|")
    )?;
    let marks = format!("{}{}", " ".repeat(at.col - 1), "^".repeat(width));
    writeln!(out, "  {pad} {} {}", paint(BLUE, "|"), paint(style, &marks))
}

fn level_of(severity: Severity) -> Level {
    match severity {
        Severity::Error => Level::Error,
        Severity::Warning => Level::Warning,
        Severity::Info => Level::Info,
    }
}

/// A validation finding as a diagnostic, quoting the profile's line.
pub fn finding<'a>(profile: &'a Profile, f: &'a Finding) -> Diagnostic<'a> {
    let snippet = f.at.as_ref().and_then(|at| {
        let text = profile.texts.get(&at.file)?;
        text.lines().nth(at.line - 1)
    });
    let mut d = Diagnostic::new(level_of(f.severity), f.message.clone())
        .code(&f.rule)
        .at(f.at.as_ref(), snippet);
    if let Some(help) = &f.help {
        d = d.note("help", help.clone());
    }
    if !f.sources.is_empty() {
        d = d.note("sources", f.sources.join("; "));
    }
    d
}

/// Every finding of a report, each followed by a blank line.
pub fn findings(out: &mut dyn Write, profile: &Profile, report: &Report) -> io::Result<()> {
    for f in &report.findings {
        diagnostic(out, &finding(profile, f))?;
        writeln!(out)?;
    }
    Ok(())
}

/// Writes the findings not already in `shown` (a finding in a parent shared by several
/// profiles is shown once per run) and records them there; returns how many were left out.
pub fn new_findings(
    out: &mut dyn Write,
    profile: &Profile,
    report: &Report,
    shown: &mut std::collections::HashSet<String>,
) -> io::Result<usize> {
    let mut repeated = 0;
    for f in &report.findings {
        let identity = match &f.at {
            Some(at) => format!("{at}\0{}\0{}", f.rule, f.message),
            None => format!("{}\0{}\0{}", profile.path.display(), f.rule, f.message),
        };
        if !shown.insert(identity) {
            repeated += 1;
            continue;
        }
        diagnostic(out, &finding(profile, f))?;
        writeln!(out)?;
    }
    Ok(repeated)
}

/// The one-line summary after a profile's findings; `repeated` of them were shown above for
/// another profile (a shared parent's).
pub fn summary_with(
    out: &mut dyn Write,
    name: &str,
    report: &Report,
    repeated: usize,
) -> io::Result<()> {
    summary(out, name, report)?;
    if repeated > 0 {
        writeln!(
            out,
            "  ({repeated} of them shown above, in a file an earlier profile shares)"
        )?;
    }
    Ok(())
}

/// The one-line summary after a profile's findings.
pub fn summary(out: &mut dyn Write, name: &str, report: &Report) -> io::Result<()> {
    let (e, w, i) = (
        report.count(Severity::Error),
        report.count(Severity::Warning),
        report.count(Severity::Info),
    );
    let verdict = match e {
        0 => paint(GREEN, "valid"),
        _ => paint(RED, "invalid"),
    };
    writeln!(
        out,
        "{name}: {verdict} ({e} error(s), {w} warning(s), {i} note(s))"
    )
}

/// An error, with the profile line it points at when it has one, and its help line.
pub fn error(out: &mut dyn Write, err: &Error) -> io::Result<()> {
    let d = match err.located() {
        Some((at, message, snippet)) => {
            Diagnostic::new(Level::Error, message).at(Some(at), snippet)
        }
        None => Diagnostic::new(Level::Error, err.to_string()),
    };
    let d = match err.help() {
        Some(help) => d.note("help", help),
        None => d,
    };
    diagnostic(out, &d)
}

/// A boot-override warning: a sysctl.d line that undoes one of the profile's keys at boot.
pub fn boot_override(out: &mut dyn Write, o: &Override) -> io::Result<()> {
    let what = match &o.theirs {
        Some(v) => format!("sets {} = {v}", o.key),
        None => format!("excludes {}", o.key),
    };
    let message = format!(
        "at boot {} {what} after {FILE_NAME}, overriding this profile's {}",
        o.at, o.ours
    );
    let help =
        format!("remove or change that line, or move it to a file that sorts before {FILE_NAME}");
    diagnostic(
        out,
        &Diagnostic::new(Level::Warning, message)
            .code("boot-override")
            .note("help", help),
    )
}

/// The level a doctor verdict renders at.
pub fn verdict_level(v: Verdict) -> Level {
    match v {
        Verdict::Ok => Level::Ok,
        Verdict::Unavailable => Level::Unavailable,
        Verdict::Info => Level::Info,
        Verdict::Warning => Level::Warning,
        Verdict::Error => Level::Error,
    }
}

/// A doctor finding: verdict, evidence, fix, keys and profiles.
pub fn doctor_check(out: &mut dyn Write, check: &Check) -> io::Result<()> {
    let mut d = Diagnostic::new(verdict_level(check.verdict), check.summary.clone()).code(check.id);
    for line in &check.evidence {
        d = d.note("evidence", line.clone());
    }
    d = d.note("fix", check.fix);
    let keys = match check.keys.is_empty() {
        true => "none: no sysctl fixes this".to_owned(),
        false => check.keys.join(", "),
    };
    d = d.note("keys", keys);
    if !check.profiles.is_empty() {
        let shipped: Vec<String> = check
            .profiles
            .iter()
            .map(|p| format!("profiles/{p}"))
            .collect();
        d = d.note("profiles", shipped.join(", "));
    }
    diagnostic(out, &d)
}

/// A success line.
pub fn ok(out: &mut dyn Write, text: &str) -> io::Result<()> {
    writeln!(out, "{}", paint(GREEN, text))
}
