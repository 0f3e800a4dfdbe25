//! Human output: compiler-style findings, aligned tables, errors with help lines.
//!
//! Everything is written to a `Write` given by the caller; color codes are always emitted and
//! the caller's stream (anstream) strips them when color is off (NO_COLOR, not a TTY,
//! `--color never`). JSON output does not come through here.

use std::io::{self, Write};

use anstyle::{AnsiColor, Style};

use crate::change::plan::{Plan, Status};
use crate::change::rollback::Entry;
use crate::change::store::{Record, SHORT_ID};
use crate::error::Error;
use crate::profile::Profile;
use crate::schema::Severity;
use crate::schema::validate::{Finding, Report};

const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();
const RED: Style = AnsiColor::Red.on_default().bold();
const YELLOW: Style = AnsiColor::Yellow.on_default().bold();
const GREEN: Style = AnsiColor::Green.on_default();
const CYAN: Style = AnsiColor::Cyan.on_default().bold();
const BLUE: Style = AnsiColor::Blue.on_default().bold();

fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

fn severity_style(severity: Severity) -> Style {
    match severity {
        Severity::Error => RED,
        Severity::Warning => YELLOW,
        Severity::Info => CYAN,
    }
}

/// Writes findings like a compiler: header, location, source line, caret, help, sources.
pub fn findings(out: &mut dyn Write, profile: &Profile, report: &Report) -> io::Result<()> {
    for finding in &report.findings {
        write_finding(out, profile, finding)?;
    }
    Ok(())
}

fn write_finding(out: &mut dyn Write, profile: &Profile, f: &Finding) -> io::Result<()> {
    let head = paint(
        severity_style(f.severity),
        &format!("{}[{}]", f.severity, f.rule),
    );
    writeln!(
        out,
        "{head}{} {}",
        paint(BOLD, ":"),
        paint(BOLD, &f.message)
    )?;
    if let Some(at) = &f.at {
        writeln!(out, "  {} {at}", paint(BLUE, "-->"))?;
        let line = profile
            .texts
            .get(&at.file)
            .and_then(|t| t.lines().nth(at.line - 1));
        if let Some(line) = line {
            let number = at.line.to_string();
            let pad = " ".repeat(number.len());
            let width = line
                .chars()
                .skip(at.col - 1)
                .take_while(|c| *c != ':')
                .count()
                .max(1);
            writeln!(out, "  {pad} {}", paint(BLUE, "|"))?;
            writeln!(
                out,
                "  {} {} {line}",
                paint(BLUE, &number),
                paint(BLUE, "|")
            )?;
            let caret = format!("{}{}", " ".repeat(at.col - 1), "^".repeat(width));
            writeln!(
                out,
                "  {pad} {} {}",
                paint(BLUE, "|"),
                paint(severity_style(f.severity), &caret)
            )?;
        }
    }
    if let Some(help) = &f.help {
        writeln!(out, "  {} {help}", paint(BOLD, "= help:"))?;
    }
    if !f.sources.is_empty() {
        writeln!(
            out,
            "  {} {}",
            paint(DIM, "= sources:"),
            paint(DIM, &f.sources.join("; "))
        )?;
    }
    writeln!(out)
}

/// The one-line summary after findings.
pub fn summary(out: &mut dyn Write, name: &str, report: &Report) -> io::Result<()> {
    let (e, w, i) = (
        report.count(Severity::Error),
        report.count(Severity::Warning),
        report.count(Severity::Info),
    );
    let verdict = if e > 0 {
        paint(RED, "invalid")
    } else {
        paint(GREEN, "valid")
    };
    writeln!(
        out,
        "{name}: {verdict} ({e} error(s), {w} warning(s), {i} note(s))"
    )
}

/// Writes rows as aligned columns; the first row is the header.
pub fn table(out: &mut dyn Write, rows: &[Vec<(String, Style)>]) -> io::Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|(t, _)| t.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, (text, style))| {
                let padded = if c + 1 == row.len() {
                    text.clone()
                } else {
                    format!("{text:<w$}", w = widths[c])
                };
                paint(*style, &padded)
            })
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

fn plain(text: impl Into<String>) -> (String, Style) {
    (text.into(), Style::new())
}

/// The plan as a table plus a unified diff of the sysctl.conf rendering.
pub fn plan(out: &mut dyn Write, plan: &Plan) -> io::Result<()> {
    let mut rows = vec![
        ["KEY", "CURRENT", "DESIRED", "STATUS"]
            .map(|h| (h.to_owned(), BOLD))
            .to_vec(),
    ];
    for change in &plan.changes {
        let (status, style) = match change.status {
            Status::Unchanged => ("unchanged", DIM),
            Status::Changed => ("change", YELLOW),
            Status::Missing => ("missing", RED),
            Status::Skipped => ("skipped (optional, absent)", DIM),
            Status::Unreadable => ("unreadable", RED),
        };
        let current = change
            .current
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| "-".into());
        rows.push(vec![
            plain(change.key.to_string()),
            plain(current),
            plain(change.desired.to_string()),
            (status.to_owned(), style),
        ]);
    }
    table(out, &rows)?;
    let pending = plan.pending().count();
    writeln!(out)?;
    if pending == 0 {
        writeln!(out, "{}", paint(GREEN, "in sync: nothing to change"))?;
        return Ok(());
    }
    writeln!(out, "{pending} key(s) to change")?;
    for line in plan.unified_diff().lines() {
        let style = match line.chars().next() {
            Some('+') if !line.starts_with("+++") => GREEN,
            Some('-') if !line.starts_with("---") => RED,
            Some('@') => CYAN,
            _ => Style::new(),
        };
        writeln!(out, "{}", paint(style, line))?;
    }
    Ok(())
}

/// A record's key changes as a table.
pub fn record(out: &mut dyn Write, record: &Record) -> io::Result<()> {
    let mut rows = vec![
        ["KEY", "BEFORE", "AFTER"]
            .map(|h| (h.to_owned(), BOLD))
            .to_vec(),
    ];
    for c in &record.changes {
        rows.push(vec![
            plain(&c.key),
            plain(&c.before),
            (c.after.clone(), GREEN),
        ]);
    }
    if let Some(p) = &record.persist {
        let state = |c: &Option<String>| if c.is_some() { "present" } else { "absent" };
        rows.push(vec![
            plain(&p.path),
            plain(state(&p.before)),
            (state(&p.after).to_owned(), GREEN),
        ]);
    }
    table(out, &rows)
}

/// The history as a table.
pub fn history(out: &mut dyn Write, entries: &[Entry]) -> io::Result<()> {
    if entries.is_empty() {
        return writeln!(out, "no changes recorded yet");
    }
    let mut rows = vec![
        ["#", "ID", "TIME", "KIND", "PROFILE", "KEYS", "STATE"]
            .map(|h| (h.to_owned(), BOLD))
            .to_vec(),
    ];
    for e in entries {
        let kind = match (e.record.kind, e.record.restores.as_deref()) {
            (crate::change::store::RecordKind::Apply, None) => "apply".to_owned(),
            // The persisting record of `sysprof confirm` / a healthy `apply --watch`.
            (crate::change::store::RecordKind::Apply, Some(r)) => {
                format!("confirm {}", &r[..SHORT_ID])
            }
            (crate::change::store::RecordKind::Rollback, _) => format!(
                "rollback to before {}",
                e.record
                    .restores
                    .as_deref()
                    .map(|r| &r[..SHORT_ID])
                    .unwrap_or("?")
            ),
        };
        let confirmed_by = entries.iter().find(|o| {
            o.record.kind == crate::change::store::RecordKind::Apply
                && o.record.restores.as_deref() == Some(e.id.as_str())
        });
        let state = match (e.record.kind, e.in_effect, confirmed_by) {
            (_, _, Some(by)) => (format!("confirmed by #{}", by.seq), DIM),
            (crate::change::store::RecordKind::Apply, true, _) => ("in effect".to_owned(), GREEN),
            (crate::change::store::RecordKind::Apply, false, _) => ("rolled back".to_owned(), DIM),
            _ => (String::new(), Style::new()),
        };
        let profile = e
            .record
            .profile
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_default();
        rows.push(vec![
            plain(e.seq.to_string()),
            (e.id[..SHORT_ID].to_owned(), YELLOW),
            plain(&e.record.time),
            plain(kind),
            plain(profile),
            plain(e.record.changes.len().to_string()),
            state,
        ]);
    }
    table(out, &rows)
}

/// An error with its help line, to stderr.
pub fn error(out: &mut dyn Write, err: &Error) -> io::Result<()> {
    writeln!(out, "{}{} {err}", paint(RED, "error"), paint(BOLD, ":"))?;
    if let Some(help) = err.help() {
        writeln!(out, "  {} {help}", paint(BOLD, "= help:"))?;
    }
    Ok(())
}

/// A success line.
pub fn ok(out: &mut dyn Write, text: &str) -> io::Result<()> {
    writeln!(out, "{}", paint(GREEN, text))
}
