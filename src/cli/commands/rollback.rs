//! `sysprof rollback [--to ID]`.

use crate::canary::confirm;
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
    out.block(|w| render::applied::rolled_back(w, &done))?;
    Ok(exit::OK)
}
