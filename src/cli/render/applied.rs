//! What `apply` reports: the outcome of a plain, staged, watched or confirmed apply, as human
//! text or one JSON document, and the live status line of a watch on a terminal.

use std::io::Write;
use std::time::Duration;

use crate::adopt::boot::Override;
use crate::canary::health::{Check, Progress};
use crate::canary::safe_apply::{Applied, Event, Placed, Watched};
use crate::change::apply::Outcome;
use crate::change::context::Context;
use crate::change::record::SHORT_ID;
use crate::change::rollback::RolledBack;
use crate::change::transaction::Committed;
use crate::cli::output::Output;
use crate::cli::render::{self, Diagnostic, Level};
use crate::error::{Result, exit};
use crate::profile::Profile;
use crate::profile::health::fmt_num;
use crate::schema::finding::Report;

/// Renders what `apply` did; returns the exit code.
pub fn report(
    out: &mut Output,
    ctx: &Context,
    profile: &Profile,
    placed: Option<&Placed>,
    applied: &Applied,
    boot: &[Override],
    report: &Report,
) -> Result<i32> {
    if let (Some(p), false) = (placed, out.json()) {
        if p.inside {
            let line = describe(p, &profile.name);
            out.diag(|w| writeln!(w, "{line}"))?;
        }
    }
    match applied {
        Applied::NotInStage => not_in_stage(out, profile, placed),
        Applied::Plain { plan, outcome } => {
            if out.json() {
                out.emit(&serde_json::json!({ "ok": true, "profile": profile.name, "plan": plan, "result": outcome, "boot_overrides": boot, "findings": report.findings }))?;
                return Ok(exit::OK);
            }
            out.block(|w| plain(w, &profile.name, outcome))?;
            Ok(exit::OK)
        }
        Applied::Synced { outcome } => synced(out, profile, outcome),
        Applied::Awaiting { committed, pending } => {
            let left = pending.secs_left(ctx.env.now());
            if out.json() {
                out.emit(&serde_json::json!({ "ok": true, "outcome": "awaiting_confirmation", "profile": profile.name, "applied": committed, "pending": pending, "seconds_left": left, "stage": placed.map(stage_json) }))?;
                return Ok(exit::OK);
            }
            let text = format!(
                "applied {}, NOT persisted: run `sysprof confirm` within {left}s (before {}) or it is rolled back automatically (watcher: {})",
                profile.name,
                pending.deadline(),
                pending.watcher
            );
            out.block(|w| {
                render::record(w, &committed.record).and_then(|()| render::ok(w, &text))
            })?;
            Ok(exit::OK)
        }
        Applied::Tripped { .. } => tripped(out, profile, placed, applied),
        Applied::Kept { .. } | Applied::Handed { .. } => {
            healthy(out, ctx, profile, placed, applied)
        }
    }
}

fn plain(w: &mut dyn Write, name: &str, outcome: &Outcome) -> std::io::Result<()> {
    match outcome {
        Outcome::InSync => render::ok(w, &format!("{name}: in sync, nothing to change")),
        Outcome::DryRun { record } => {
            render::record(w, record)?;
            writeln!(w, "dry run: nothing was changed")
        }
        Outcome::Applied { id, seq, record } => {
            render::record(w, record)?;
            let persisted = record
                .persist
                .as_ref()
                .map(|p| format!(", persisted to {}", p.path))
                .unwrap_or_default();
            let line = format!(
                "applied {name} ({} key(s)){persisted}; snapshot {} (#{seq}); undo with `sysprof rollback`",
                record.changes.len(),
                &id[..SHORT_ID]
            );
            render::ok(w, &line)
        }
    }
}

/// Asked to watch or confirm, but the kernel already matched.
fn synced(out: &mut Output, profile: &Profile, outcome: &Outcome) -> Result<i32> {
    if out.json() {
        out.emit(&serde_json::json!({ "ok": true, "outcome": "in_sync", "profile": profile.name, "result": outcome }))?;
        return Ok(exit::OK);
    }
    let text = match outcome {
        Outcome::Applied { record, .. } => format!(
            "{}: kernel already in sync, nothing to watch; persisted to {}",
            profile.name,
            record
                .persist
                .as_ref()
                .map(|p| p.path.as_str())
                .unwrap_or_default()
        ),
        _ => format!("{}: in sync, nothing to change", profile.name),
    };
    out.block(|w| render::ok(w, &text))?;
    Ok(exit::OK)
}

fn not_in_stage(out: &mut Output, profile: &Profile, placed: Option<&Placed>) -> Result<i32> {
    let Some(placed) = placed else {
        return Ok(exit::NOT_IN_STAGE);
    };
    if out.json() {
        out.emit(&serde_json::json!({ "ok": true, "status": "not_in_stage", "profile": profile.name, "stage": stage_json(placed), "exit_code": exit::NOT_IN_STAGE }))?;
        return Ok(exit::NOT_IN_STAGE);
    }
    let text = format!("{}; nothing was changed", describe(placed, &profile.name));
    out.block(|w| writeln!(w, "{text}"))?;
    Ok(exit::NOT_IN_STAGE)
}

/// `NAME: host ID is in stage `canary` (cohort 0.42 < 1%)`.
pub fn describe(p: &Placed, profile: &str) -> String {
    let (relation, verdict) = match p.inside {
        true => ("<", "in"),
        false => ("≥", "not in"),
    };
    format!(
        "{profile}: host {} is {verdict} stage `{}` (cohort {:.2} {relation} {}%)",
        p.host_id,
        p.stage.name,
        p.cohort,
        fmt_num(p.stage.percent)
    )
}

fn stage_json(p: &Placed) -> serde_json::Value {
    serde_json::json!({ "name": p.stage.name, "percent": p.stage.percent, "host_id": p.host_id, "cohort": p.cohort, "in_stage": p.inside })
}

fn tripped(
    out: &mut Output,
    profile: &Profile,
    placed: Option<&Placed>,
    applied: &Applied,
) -> Result<i32> {
    let Applied::Tripped {
        committed,
        watched,
        rollback,
    } = applied
    else {
        return Ok(exit::FAILURE);
    };
    let verdict = &watched.verdict;
    if out.json() {
        out.emit(&serde_json::json!({ "ok": false, "outcome": "rolled_back", "profile": profile.name, "tripped": verdict.tripped(), "verdict": verdict, "applied": committed, "rollback": rollback, "stage": placed.map(stage_json), "exit_code": exit::GATE_TRIPPED }))?;
        return Ok(exit::GATE_TRIPPED);
    }
    let after = match verdict {
        crate::canary::health::Verdict::Tripped { after, .. } => *after,
        _ => Duration::ZERO,
    };
    let figures: Vec<String> = verdict.tripped().iter().map(|c| c.describe()).collect();
    let head = format!(
        "health gate tripped {:.1}s into the {} watch: {}",
        after.as_secs_f64(),
        humantime::format_duration(watched.window),
        figures.join("; ")
    );
    let undone = match rollback {
        Some(r) => format!(
            "rolled back {}: {} key(s) restored, snapshot {}{}",
            profile.name,
            r.record.changes.len(),
            r.id.as_deref().map(|i| &i[..SHORT_ID]).unwrap_or("-"),
            r.seq.map(|s| format!(" (#{s})")).unwrap_or_default()
        ),
        None => format!("{}: the change had already been undone", profile.name),
    };
    out.diag(|w| {
        render::diagnostic(w, &Diagnostic::new(Level::Error, head))?;
        writeln!(w, "{undone}")
    })?;
    Ok(exit::GATE_TRIPPED)
}

fn healthy(
    out: &mut Output,
    ctx: &Context,
    profile: &Profile,
    placed: Option<&Placed>,
    applied: &Applied,
) -> Result<i32> {
    let stage = placed.map(stage_json);
    match applied {
        Applied::Handed {
            committed,
            watched,
            pending,
        } => {
            let within = pending.secs_left(ctx.env.now());
            if out.json() {
                out.emit(&serde_json::json!({ "ok": true, "outcome": "awaiting_confirmation", "profile": profile.name, "verdict": watched.verdict, "applied": committed, "pending": pending, "seconds_left": within, "stage": stage }))?;
                return Ok(exit::OK);
            }
            let text = format!(
                "healthy for {}; NOT persisted: run `sysprof confirm` within {within}s (before {}) or it is rolled back",
                humantime::format_duration(watched.window),
                pending.deadline()
            );
            out.block(|w| render::ok(w, &text))?;
        }
        Applied::Kept {
            committed,
            watched,
            confirmed,
        } => {
            if out.json() {
                let persisted = confirmed.persisted.as_ref();
                out.emit(&serde_json::json!({ "ok": true, "outcome": "persisted", "profile": profile.name, "verdict": watched.verdict, "applied": committed, "persisted": persisted, "stage": stage }))?;
                return Ok(exit::OK);
            }
            let text = kept(profile, watched, confirmed.persisted.as_ref());
            out.block(|w| render::ok(w, &text))?;
        }
        _ => {}
    }
    Ok(exit::OK)
}

fn kept(profile: &Profile, watched: &Watched, persisted: Option<&Committed>) -> String {
    let persisted = match persisted {
        Some(c) => format!(
            "persisted to {} (snapshot {}, #{})",
            c.record
                .persist
                .as_ref()
                .map(|p| p.path.as_str())
                .unwrap_or("-"),
            &c.id[..SHORT_ID],
            c.seq
        ),
        None => "nothing to persist".into(),
    };
    format!(
        "healthy for {}: kept {}, {persisted}; undo with `sysprof rollback`",
        humantime::format_duration(watched.window),
        profile.name
    )
}

/// How a watch reports its progress.
#[derive(Debug, Clone, Copy)]
pub enum ProgressMode {
    /// One status line rewritten in place at every sample (a terminal).
    Redraw,
    /// A full line when the watch starts and then once per interval (logs, journald, CI).
    Lines(Duration),
}

/// The progress of a watch on stderr: a line rewritten in place on a terminal, or a line per
/// interval elsewhere, so a ten-minute watch is never ten silent minutes in a log.
pub struct LiveLine {
    mode: ProgressMode,
    shown: usize,
    last_line_at: Option<Duration>,
}

impl LiveLine {
    /// Progress in `mode`.
    pub fn new(mode: ProgressMode) -> Self {
        Self {
            mode,
            shown: 0,
            last_line_at: None,
        }
    }

    /// Announces a watch (human output) or reports a sample.
    pub fn observe(&mut self, out: &mut Output, profile: &str, event: Event) {
        match event {
            Event::Watching {
                committed,
                gates,
                window,
                from_stage,
            } if !out.json() => {
                let source = if from_stage {
                    " (the stage's watch)"
                } else {
                    ""
                };
                let text = format!(
                    "applied {profile} ({} key(s)), NOT persisted yet; watching {gates} gate(s) for {}{source}",
                    committed.record.changes.len(),
                    humantime::format_duration(window)
                );
                let _ = out.block(|w| {
                    render::record(w, &committed.record).and_then(|()| writeln!(w, "{text}"))
                });
            }
            Event::Watching { .. } => {}
            Event::Sample(p) => self.show(&mut out.err, p),
        }
    }

    /// Reports `p`: redraws the line, or writes one when an interval has passed since the last.
    fn show(&mut self, err: &mut dyn Write, p: &Progress) {
        let line = status_line(p);
        match self.mode {
            ProgressMode::Redraw => {
                let width = line.chars().count();
                let pad = " ".repeat(self.shown.saturating_sub(width));
                let _ = write!(err, "\r{line}{pad}");
                self.shown = width;
            }
            ProgressMode::Lines(every) => {
                let due = self
                    .last_line_at
                    .is_none_or(|at| p.elapsed.saturating_sub(at) >= every);
                if !due {
                    return;
                }
                self.last_line_at = Some(p.elapsed);
                let _ = writeln!(err, "{line}");
            }
        }
        let _ = err.flush();
    }

    /// Ends the line.
    pub fn end(&mut self, err: &mut dyn Write) {
        if matches!(self.mode, ProgressMode::Redraw) && self.shown > 0 {
            let _ = writeln!(err);
        }
    }
}

/// What a rollback did (or, dry, would do): the writes, the keys it could not restore, and how
/// to undo it.
pub fn rolled_back(out: &mut dyn Write, done: &RolledBack) -> std::io::Result<()> {
    render::record(out, &done.record)?;
    for skipped in &done.skipped {
        writeln!(out, "not restored: {skipped}")?;
    }
    let target = &done.target[..SHORT_ID];
    let line = match (&done.id, done.seq) {
        (Some(id), Some(seq)) => {
            let id = &id[..SHORT_ID];
            format!(
                "restored the state from before {target}; recorded as {id} (#{seq}), undo with `sysprof rollback --to {id}`"
            )
        }
        _ => format!("dry run: would restore the state from before {target}; nothing was changed"),
    };
    render::ok(out, &line)
}

/// `watching: 540s left | gate value/limit | …`.
fn status_line(p: &Progress) -> String {
    let gates: Vec<String> = p.checks.iter().map(Check::brief).collect();
    format!(
        "watching: {}s left | {}",
        p.remaining.as_millis().div_ceil(1000),
        gates.join(" | ")
    )
}
