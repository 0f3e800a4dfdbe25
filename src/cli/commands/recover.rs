//! `sysprof recover`: finish or undo an interrupted change, and revert a pending change whose
//! deadline passed, explicitly (at boot, from a timer, or by hand).

use crate::canary::confirm::{self, Enforced};
use crate::change::context::Context;
use crate::change::store::StoreLock;
use crate::change::transaction::{self, Recovered};
use crate::cli::output::Output;
use crate::cli::render;
use crate::cli::settings::Settings;
use crate::error::{Result, exit};

/// Takes the lock and recovers (or moves a hopeless journal aside).
pub fn run(s: &Settings, discard_journal: bool, out: &mut Output) -> Result<i32> {
    let ctx = s.context()?;
    let lock = ctx.store.lock(ctx.lock_timeout)?;
    if discard_journal {
        return discard(&ctx, &lock, out);
    }
    let recovered = transaction::recover(&ctx, &lock)?;
    // A pending change that is due (its watcher may be dead) is reverted here too.
    let boot = confirm::boot_id(&ctx.tree);
    let enforced = confirm::enforce_locked(&ctx, &lock, None, None, boot.as_deref())?;
    if out.json() {
        out.emit(&serde_json::json!({ "ok": true, "recovered": recovered, "pending": enforced }))?;
        return Ok(exit::OK);
    }
    let mut lines = vec![match recovered {
        Recovered::Nothing => "nothing to recover".to_owned(),
        Recovered::Completed => "the interrupted change had finished; it is now recorded".into(),
        Recovered::RolledBack => {
            "the interrupted change was undone; the host is back to its previous state".into()
        }
    }];
    lines.extend(match enforced {
        Enforced::Reverted { reason, .. } => Some(format!(
            "the pending change was due ({reason:?}) and was rolled back"
        )),
        Enforced::Cleared => {
            Some("the pending change had already been undone; its record is cleared".into())
        }
        Enforced::Gone | Enforced::Waiting { .. } => None,
    });
    out.block(|w| lines.iter().try_for_each(|l| render::ok(w, l)))?;
    Ok(exit::OK)
}

/// `--discard-journal`: the journal moved aside, nothing undone.
fn discard(ctx: &Context, lock: &StoreLock, out: &mut Output) -> Result<i32> {
    let moved = ctx.store.discard_journal(lock)?;
    if out.json() {
        out.emit(&serde_json::json!({ "ok": true, "discarded": moved }))?;
        return Ok(exit::OK);
    }
    let text = match &moved {
        Some(to) => format!(
            "journal moved aside to {}; nothing was undone",
            to.display()
        ),
        None => "no journal to discard".into(),
    };
    out.block(|w| render::ok(w, &text))?;
    Ok(exit::OK)
}
