//! `sysprof __watch-deadline --token T` (hidden): the detached watcher apply starts. It polls
//! the pending change and rolls it back when it is due; its output goes to `watcher.log` in the
//! state dir.

use std::io::Write;
use std::time::Duration;

use crate::canary::confirm::{self, Enforced};
use crate::canary::safe_apply::boot_id;
use crate::change::context::Context;
use crate::cli::output::Output;
use crate::cli::settings::Settings;
use crate::error::{Error, Result, exit};

/// Consecutive failures after which the watcher gives up (and says so in the log).
const MAX_FAILURES: u32 = 30;

/// Polls until the pending change is gone, confirmed or reverted.
pub fn run(s: &Settings, token: &str, out: &mut Output) -> Result<i32> {
    let ctx = s.context()?;
    log(
        out,
        &ctx,
        &format!("watcher pid {} started for {token}", ctx.env.pid()),
    );
    let mut failures = 0;
    loop {
        match confirm::enforce(&ctx, Some(token), None, boot_id(&ctx.tree).as_deref()) {
            Ok(Enforced::Waiting { left }) => {
                failures = 0;
                ctx.env
                    .sleep(left.clamp(Duration::from_millis(50), Duration::from_secs(1)));
            }
            Ok(done) => {
                let what = serde_json::to_string(&done).unwrap_or_default();
                log(out, &ctx, &format!("done: {what}"));
                return Ok(exit::OK);
            }
            Err(Error::Locked { .. }) => ctx.env.sleep(Duration::from_millis(200)),
            Err(e) => {
                failures += 1;
                log(out, &ctx, &format!("attempt {failures} failed: {e}"));
                if failures >= MAX_FAILURES {
                    return Err(e);
                }
                ctx.env.sleep(Duration::from_secs(1));
            }
        }
    }
}

fn log(out: &mut Output, ctx: &Context, text: &str) {
    let now = humantime::format_rfc3339_seconds(ctx.env.now());
    let _ = writeln!(out.err, "{now} {text}");
}
