//! `sysprof confirm`: keep the change awaiting confirmation.

use crate::canary::confirm;
use crate::canary::safe_apply::boot_id;
use crate::change::record::SHORT_ID;
use crate::cli::output::Output;
use crate::cli::render;
use crate::cli::settings::Settings;
use crate::error::{Result, exit};

/// Persists the pending change and cancels its automatic rollback.
pub fn run(s: &Settings, out: &mut Output) -> Result<i32> {
    let ctx = s.context()?;
    let confirmed = confirm::confirm(&ctx, boot_id(&ctx.tree).as_deref())?;
    if out.json() {
        let persisted = confirmed.persisted.as_ref();
        out.emit(&serde_json::json!({ "ok": true, "confirmed": confirmed.pending, "persisted": persisted }))?;
        return Ok(exit::OK);
    }
    let name = &confirmed.pending.profile.name;
    let text = match &confirmed.persisted {
        Some(c) => {
            let path = c
                .record
                .persist
                .as_ref()
                .map(|x| x.path.as_str())
                .unwrap_or("-");
            format!(
                "confirmed {name}: persisted to {path} (snapshot {}, #{}); undo with `sysprof rollback`",
                &c.id[..SHORT_ID],
                c.seq
            )
        }
        None => format!("confirmed {name}: kept (persisting is off, or the file already matched)"),
    };
    out.block(|w| render::ok(w, &text))?;
    Ok(exit::OK)
}
