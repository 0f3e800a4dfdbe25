//! `sysprof rollback [--to ID]`.

use crate::canary::confirm;
use crate::change::record::SHORT_ID;
use crate::change::rollback;
use crate::cli::output::Output;
use crate::cli::render;
use crate::cli::settings::Settings;
use crate::error::{Result, exit};

/// Restores the state before the last apply in effect (or before `--to ID`).
pub fn run(
    s: &Settings,
    to: rollback::Target<'_>,
    options: rollback::Options,
    out: &mut Output,
) -> Result<i32> {
    let dry_run = options.dry_run;
    let done = match dry_run {
        // A preview takes no lock and writes nothing, not even a recovery.
        true => rollback::preview(&s.context()?, to, options.force)?,
        false => {
            let ctx = super::settled(s, true)?;
            let lock = ctx.store.lock(ctx.lock_timeout)?;
            let done = rollback::rollback(&ctx, &lock, to, options)?;
            // Undoing a change that awaited confirmation ends its pending record too.
            let boot = confirm::boot_id(&ctx.tree);
            confirm::enforce_locked(&ctx, &lock, None, None, boot.as_deref())?;
            done
        }
    };
    if out.json() {
        out.emit(&serde_json::json!({ "ok": true, "dry_run": dry_run, "rollback": done }))?;
        return Ok(exit::OK);
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
    out.block(|w| render::record(w, &done.record).and_then(|()| render::ok(w, &line)))?;
    Ok(exit::OK)
}
