//! `sysprof recover`: finish or undo an interrupted change explicitly.

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
        let moved = ctx.store.discard_journal(&lock)?;
        let text = match &moved {
            Some(to) => format!(
                "journal moved aside to {}; nothing was undone",
                to.display()
            ),
            None => "no journal to discard".into(),
        };
        return match out.json() {
            true => out
                .emit(&serde_json::json!({ "ok": true, "discarded": moved }))
                .map(|()| exit::OK),
            false => out.block(|w| render::ok(w, &text)).map(|()| exit::OK),
        };
    }
    let recovered = transaction::recover(&ctx, &lock)?;
    if out.json() {
        out.emit(&serde_json::json!({ "ok": true, "recovered": recovered }))?;
        return Ok(exit::OK);
    }
    let text = match recovered {
        Recovered::Nothing => "nothing to recover",
        Recovered::Completed => "the interrupted change had finished; it is now recorded",
        Recovered::RolledBack => {
            "the interrupted change was undone; the host is back to its previous state"
        }
    };
    out.block(|w| render::ok(w, text))?;
    Ok(exit::OK)
}
