//! Aligned tables: the plan, records, the history, and any rows a command builds.

use std::io::{self, Write};

use anstyle::Style;

use crate::change::history::History;
use crate::change::plan::{Plan, Status};
use crate::change::record::{Record, RecordKind, SHORT_ID};
use crate::cli::render::{BOLD, CYAN, DIM, GREEN, RED, YELLOW, paint};

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
            Status::Released => ("release (set by sysprof before)", YELLOW),
            Status::Kept => ("kept (set by sysprof before)", DIM),
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
    for c in plan
        .changes
        .iter()
        .filter(|c| c.one_way.is_some() || c.trigger)
    {
        let note = match &c.one_way {
            Some(why) => format!(
                "one-way: {} = {} cannot be undone until reboot: {why}",
                c.key, c.desired
            ),
            None => format!(
                "trigger: writing {} acts once; rollback does not undo it",
                c.key
            ),
        };
        writeln!(out, "{}", paint(YELLOW, &note))?;
    }
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
            plain(c.key.to_string()),
            plain(c.before.to_string()),
            (c.after.to_string(), GREEN),
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
pub fn history(out: &mut dyn Write, history: &History) -> io::Result<()> {
    let entries = &history.entries;
    if entries.is_empty() && history.damaged.is_empty() && history.torn.is_none() {
        return writeln!(out, "no changes recorded yet");
    }
    let mut rows = vec![
        ["#", "ID", "TIME", "KIND", "PROFILE", "KEYS", "STATE"]
            .map(|h| (h.to_owned(), BOLD))
            .to_vec(),
    ];
    for e in entries {
        let kind = match (e.record.kind, e.record.restores.as_deref()) {
            (RecordKind::Apply, None) => "apply".to_owned(),
            // The persisting record of `sysprof confirm` / a healthy `apply --watch`.
            (RecordKind::Apply, Some(r)) => {
                format!("confirm {}", &r[..SHORT_ID])
            }
            (RecordKind::Rollback, _) => format!(
                "rollback to before {}",
                e.record
                    .restores
                    .as_deref()
                    .map(|r| &r[..SHORT_ID])
                    .unwrap_or("?")
            ),
        };
        let confirmed_by = entries.iter().find(|o| {
            o.record.kind == RecordKind::Apply
                && o.record.restores.as_deref() == Some(e.id.as_str())
        });
        let state = match (e.record.kind, e.in_effect, confirmed_by) {
            (_, _, Some(by)) => (format!("confirmed by #{}", by.seq), DIM),
            (RecordKind::Apply, true, _) => ("in effect".to_owned(), GREEN),
            (RecordKind::Apply, false, _) => ("rolled back".to_owned(), DIM),
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
    for d in &history.damaged {
        let at = rows
            .iter()
            .skip(1)
            .position(|r| r[0].0.parse::<u64>().is_ok_and(|s| s > d.seq));
        let row = vec![
            plain(d.seq.to_string()),
            (d.id[..SHORT_ID.min(d.id.len())].to_owned(), RED),
            plain("?"),
            plain("?"),
            plain("?"),
            plain("?"),
            (format!("DAMAGED: {}", d.why), RED),
        ];
        rows.insert(at.map_or(rows.len(), |i| i + 1), row);
    }
    table(out, &rows)?;
    match &history.torn {
        Some(tail) => writeln!(out, "{}", paint(RED, &super::torn_tail(tail))),
        None => Ok(()),
    }
}
