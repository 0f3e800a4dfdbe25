//! `sysprof confirm`, the detached `__watch-deadline` watcher, and the pending change in `status`.

use std::io::Write;
use std::time::Duration;

use super::canary::boot_id;
use super::{Io, io_err};
use crate::canary::confirm::{self, Enforced};
use crate::change::context::Context;
use crate::change::store::SHORT_ID;
use crate::cli::Global;
use crate::cli::render;
use crate::error::{Error, Result, exit};

/// Persists the pending change and cancels its automatic rollback.
pub fn run(g: &Global, io: &mut Io) -> Result<i32> {
    let ctx = g.context()?;
    let confirmed = confirm::confirm(&ctx, boot_id(&ctx).as_deref())?;
    if io.json() {
        io.emit(&serde_json::json!({ "ok": true, "confirmed": confirmed.pending, "persisted": confirmed.persisted }))?;
        return Ok(exit::OK);
    }
    let p = &confirmed.pending;
    let text = match &confirmed.persisted {
        Some((id, seq, record)) => format!(
            "confirmed {}: persisted to {} (snapshot {}, #{seq}); undo with `sysprof rollback`",
            p.profile.name,
            record
                .persist
                .as_ref()
                .map(|x| x.path.as_str())
                .unwrap_or("-"),
            &id[..SHORT_ID]
        ),
        None => format!(
            "confirmed {}: kept (persisting is off, or the file already matched)",
            p.profile.name
        ),
    };
    render::ok(&mut io.out, &text).map_err(io_err)?;
    Ok(exit::OK)
}

/// The detached watcher: polls the pending change and rolls it back when it is due.
/// Its output goes to `watcher.log` in the state dir.
pub fn watch_deadline(g: &Global, token: &str, io: &mut Io) -> Result<i32> {
    let ctx = g.context()?;
    let me = std::process::id();
    log(io, &ctx, &format!("watcher pid {me} started for {token}"));
    let mut failures = 0;
    loop {
        match confirm::enforce(&ctx, Some(token), None, boot_id(&ctx).as_deref()) {
            Ok(Enforced::Waiting { left }) => {
                failures = 0;
                std::thread::sleep(
                    left.min(Duration::from_secs(1))
                        .max(Duration::from_millis(50)),
                );
            }
            Ok(done) => {
                let what = serde_json::to_string(&done).unwrap_or_default();
                log(io, &ctx, &format!("done: {what}"));
                return Ok(exit::OK);
            }
            Err(Error::Locked { .. }) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => {
                failures += 1;
                log(io, &ctx, &format!("attempt {failures} failed: {e}"));
                if failures >= 30 {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

fn log(io: &mut Io, ctx: &Context, text: &str) {
    let now = humantime::format_rfc3339_seconds((ctx.now)());
    let _ = writeln!(io.err, "{now} {text}");
}

/// The pending change for `status`: JSON, and a line for humans.
pub fn pending_status(ctx: &Context) -> Result<(serde_json::Value, Option<String>)> {
    let Some(p) = confirm::load(&ctx.store)? else {
        return Ok((serde_json::Value::Null, None));
    };
    let now = (ctx.now)();
    let left = p.secs_left(now);
    let watcher_alive = p.watcher_pid.is_some_and(confirm::running);
    let due = confirm::due(&p, now, boot_id(ctx).as_deref());
    let json = serde_json::json!({ "change": p, "seconds_left": left, "watcher_alive": watcher_alive, "due": due });
    let record = p
        .record
        .as_deref()
        .map(|r| &r[..SHORT_ID])
        .unwrap_or("(applying)");
    let line = match due {
        Some(reason) => format!(
            "PENDING change {record} ({}) is due for rollback ({reason:?}); the next apply or confirm rolls it back",
            p.profile.name
        ),
        None => format!(
            "PENDING change {record} ({}, {:?} mode, not persisted): rolled back in {left}s at {} unless `sysprof confirm` runs; watcher {}: {}",
            p.profile.name,
            p.mode,
            p.deadline(),
            p.watcher,
            match p.watcher_pid {
                Some(pid) if watcher_alive => format!("pid {pid}, running"),
                Some(pid) => format!(
                    "pid {pid}, NOT running: the next apply or confirm enforces the deadline"
                ),
                None => "run by systemd".into(),
            }
        ),
    };
    Ok((json, Some(line)))
}
