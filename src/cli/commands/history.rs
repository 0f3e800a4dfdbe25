//! `sysprof history`: every recorded change, oldest first.

use crate::change::history;
use crate::cli::output::Output;
use crate::cli::render;
use crate::cli::settings::Settings;
use crate::error::{Result, exit};

/// Lists every recorded change, verifying each snapshot.
pub fn run(s: &Settings, out: &mut Output) -> Result<i32> {
    let ctx = super::settled(s, false)?;
    let history = history::entries(&ctx)?;
    if out.json() {
        out.emit(&serde_json::json!({ "ok": true, "entries": history.entries, "damaged": history.damaged, "torn": history.torn }))?;
    } else {
        out.block(|w| render::history(w, &history))?;
    }
    Ok(exit::OK)
}
