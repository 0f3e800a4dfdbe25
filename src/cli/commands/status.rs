//! `sysprof status`: unfinished change, pending confirmation, lock holder, last change, and
//! drift: keys another writer changed since sysprof last set them.

use crate::canary::confirm::{self, Enforced, Pending};
use crate::canary::safe_apply::boot_id;
use crate::canary::tripped;
use crate::canary::watcher;
use crate::change::context::Context;
use crate::change::history::{self, Entry, History};
use crate::change::persist;
use crate::change::record::SHORT_ID;
use crate::change::store::Journal;
use crate::cli::output::Output;
use crate::cli::render;
use crate::cli::settings::Settings;
use crate::diagnose::drift;
use crate::diagnose::drift::{Disagreement, Drift};
use crate::error::{Result, exit};

/// Reports the store's state without taking the lock.
pub fn run(s: &Settings, out: &mut Output) -> Result<i32> {
    let (ctx, enforced) = super::settled_with(s, false)?;
    // A damaged journal is reported, not fatal: status is what the operator checks first.
    let journal = ctx.store.journal().map_err(|e| e.to_string());
    let holder = ctx
        .store
        .lock_holder()
        .filter(|pid| ctx.env.process(*pid).is_some());
    let history = history::entries(&ctx)?;
    let last = history.last();
    // Every key sysprof ever wrote, at the value it last wrote (not just the last change).
    let drift = drift::detect(&ctx.tree, &history);
    let pending = confirm::load(&ctx.store)?;
    let (pending_json, pending_line) = pending_status(&ctx, pending.as_ref());
    let disagree = match pending {
        // A pending change is unpersisted on purpose until it is confirmed.
        Some(_) => None,
        None => disagreements(&ctx, &history)?,
    };
    let lost = lost_history(&ctx, &history)?;
    if out.json() {
        out.emit(&serde_json::json!({ "ok": true, "state_dir": ctx.store.dir(), "unfinished": journal.as_ref().unwrap_or(&None), "journal_damaged": journal.as_ref().err(), "lock_holder": holder, "last": last, "damaged": history.damaged, "history_lost": lost, "drift": drift, "pending": pending_json, "enforced": enforced, "disagreements": disagree, "tripped": tripped::all(&ctx)? }))?;
        return Ok(exit::OK);
    }
    let mut lines = lines(&ctx, &journal, pending_line, holder, last, &drift)?;
    if let Some(Enforced::Reverted { reason, .. }) = &enforced {
        let text = format!("a pending change was due ({reason:?}) and has just been rolled back");
        lines.insert(1, text);
    }
    match lost {
        Some(warning) => lines.push(warning),
        None => lines.extend(agreement_lines(disagree.as_deref())),
    }
    lines.extend(history.torn.as_deref().map(render::torn_tail));
    lines.extend(history.damaged.iter().map(|d| {
        format!("DAMAGED history entry #{} ({}): {}; `sysprof history` lists it, rollback past it is refused", d.seq, &d.id[..SHORT_ID.min(d.id.len())], d.why)
    }));
    out.block(|w| lines.iter().try_for_each(|line| writeln!(w, "{line}")))?;
    Ok(exit::OK)
}

/// A warning when the history is empty although records or the persisted file say sysprof
/// changed this kernel: the history was lost or truncated, and rollback no longer knows those
/// changes.
fn lost_history(ctx: &Context, history: &History) -> Result<Option<String>> {
    if !history.entries.is_empty() || !history.damaged.is_empty() {
        return Ok(None);
    }
    let records = ctx.store.record_ids()?.len();
    let file = match &ctx.persist_file {
        Some(path) => persist::read(path, ctx.store.euid())?.map(|_| path.display().to_string()),
        None => None,
    };
    if records == 0 && file.is_none() {
        return Ok(None);
    }
    let evidence = match file {
        Some(file) => format!("records/ holds {records} record(s) and {file} exists"),
        None => format!("records/ holds {records} record(s)"),
    };
    Ok(Some(format!(
        "WARNING: the history is empty, but {evidence}: history.jsonl was lost or truncated, so rollback does not know what sysprof changed; restore it from a backup, inspect records with `sysprof show ID`, or apply the intended profile again"
    )))
}

/// The persisted file against the kernel and the history (`None` when persisting is off).
fn disagreements(ctx: &Context, history: &History) -> Result<Option<Vec<Disagreement>>> {
    let Some(path) = &ctx.persist_file else {
        return Ok(None);
    };
    let text = persist::read(path, ctx.store.euid())?;
    let file = path.display().to_string();
    Ok(Some(drift::disagreements(
        &ctx.tree,
        history,
        &file,
        text.as_deref(),
    )))
}

/// One line saying the three agree, or one per disagreement.
fn agreement_lines(disagree: Option<&[Disagreement]>) -> Vec<String> {
    match disagree {
        None => Vec::new(),
        Some([]) => vec!["kernel, persisted file and history agree".into()],
        Some(list) => list
            .iter()
            .map(|d| format!("DISAGREE: {}: {}", d.key, d.what))
            .collect(),
    }
}

/// The unfinished change, if any: a damaged journal is named with the way out.
fn journal_line(journal: &std::result::Result<Option<Journal>, String>) -> String {
    match journal {
        Err(e) => format!(
            "UNFINISHED change with a damaged journal: {e}; compare the drift below, then run `sysprof recover --discard-journal`"
        ),
        Ok(Some(j)) => format!(
            "UNFINISHED change {} (phase {:?}): the next mutating command, or `sysprof recover`, will finish or undo it",
            &j.id[..SHORT_ID],
            j.phase
        ),
        Ok(None) => "no unfinished change".into(),
    }
}

/// The report for humans, one line per fact.
fn lines(
    ctx: &Context,
    journal: &std::result::Result<Option<Journal>, String>,
    pending: Option<String>,
    holder: Option<u32>,
    last: Option<&Entry>,
    drift: &[Drift],
) -> Result<Vec<String>> {
    let mut lines = vec![format!("state dir: {}", ctx.store.dir().display())];
    lines.push(journal_line(journal));
    lines.extend(pending);
    lines.extend(
        holder.map(|pid| format!("pid {pid} holds the lock (a change may be in progress)")),
    );
    lines.push(match last {
        Some(e) => format!(
            "last change: #{} {} {:?} at {} ({} key(s))",
            e.seq,
            &e.id[..SHORT_ID],
            e.record.kind,
            e.record.time,
            e.record.changes.len()
        ),
        None => "no changes recorded".into(),
    });
    for d in drift {
        let now = d
            .now
            .as_ref()
            .map_or("unreadable".into(), ToString::to_string);
        lines.push(format!(
            "drift: {} is {now} (sysprof set {} in #{}); another writer changed it",
            d.key, d.expected, d.set_by
        ));
    }
    lines.extend(tripped::all(ctx)?.iter().map(tripped_line));
    Ok(lines)
}

/// A profile version held back because its watch tripped.
fn tripped_line(t: &tripped::Trip) -> String {
    format!(
        "tripped: profile {} ({}) tripped a health gate at {} ({}); apply refuses this version until it changes or --retry-tripped",
        t.profile,
        &t.fingerprint[..SHORT_ID.min(t.fingerprint.len())],
        t.time,
        t.gates.join("; ")
    )
}

/// The pending change for `status`: JSON, and a line for humans.
fn pending_status(ctx: &Context, p: Option<&Pending>) -> (serde_json::Value, Option<String>) {
    let Some(p) = p else {
        return (serde_json::Value::Null, None);
    };
    let left = p.secs_left(ctx.env.now());
    let watcher_alive = p
        .watcher_pid
        .is_some_and(|pid| watcher::running(ctx.env, pid));
    let due = confirm::due(p, ctx.env, boot_id(&ctx.tree).as_deref());
    let json = serde_json::json!({ "change": p, "seconds_left": left, "watcher_alive": watcher_alive, "due": due });
    let record = p
        .record
        .as_deref()
        .map(|r| &r[..SHORT_ID])
        .unwrap_or("(applying)");
    let watcher = match p.watcher_pid {
        Some(pid) if watcher_alive => format!("pid {pid}, running"),
        Some(pid) => {
            format!(
                "pid {pid}, NOT running: any sysprof command (or `sysprof recover`) reverts the change once it is due"
            )
        }
        None => "run by systemd".into(),
    };
    let line = match due {
        Some(reason) => format!(
            "PENDING change {record} ({}) is due for rollback ({reason:?}); the next apply or confirm rolls it back",
            p.profile.name
        ),
        None => format!(
            "PENDING change {record} ({}, {:?} mode, not persisted): rolled back in {left}s at {} unless `sysprof confirm` runs; watcher {}: {watcher}",
            p.profile.name,
            p.mode,
            p.deadline(),
            p.watcher
        ),
    };
    (json, Some(line))
}
