//! Profile versions whose watch tripped a health gate on this host, so a retry loop does not
//! re-apply a change that just failed.
//!
//! Engines retry: a DaemonSet's init container is restarted, a play is rerun, a systemd unit
//! restarts. Each retry of a change whose watch tripped would apply it again, hurt the host
//! for up to a window and roll back again. After a trip, the profile's fingerprint is written
//! to `tripped.json` in the state dir; applying that same version is then refused (exit 8,
//! nothing written) until the profile changes or `--retry-tripped` is given.

use serde::{Deserialize, Serialize};

use crate::change::context::Context;
use crate::error::{Error, Result};
use crate::profile::Profile;

/// The file in the state dir.
const FILE: &str = "tripped.json";

/// Entries kept (the newest).
const KEEP: usize = 64;

/// One tripped profile version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trip {
    /// The profile's fingerprint.
    pub fingerprint: String,
    /// Its name.
    pub profile: String,
    /// When it tripped (RFC 3339).
    pub time: String,
    /// What tripped (`TcpExt.ListenOverflows rose by 38 …`).
    pub gates: Vec<String>,
}

/// The trip recorded for this version of `profile`, if any.
pub fn find(ctx: &Context, profile: &Profile) -> Result<Option<Trip>> {
    Ok(all(ctx)?
        .into_iter()
        .rev()
        .find(|t| t.fingerprint == profile.fingerprint))
}

/// Records that this version of `profile` tripped `gates` (descriptions).
pub fn record(ctx: &Context, profile: &Profile, gates: Vec<String>) -> Result<()> {
    let mut trips = all(ctx)?;
    trips.retain(|t| t.fingerprint != profile.fingerprint);
    trips.push(Trip {
        fingerprint: profile.fingerprint.clone(),
        profile: profile.name.clone(),
        time: humantime::format_rfc3339_seconds(ctx.env.now()).to_string(),
        gates,
    });
    let from = trips.len().saturating_sub(KEEP);
    let bytes = serde_json::to_vec_pretty(&trips[from..]).expect("trips serialise");
    ctx.store.write_new_file(FILE, &bytes)
}

/// Refuses to apply a version of `profile` that tripped here before (exit 8).
pub fn refuse(ctx: &Context, profile: &Profile) -> Result<()> {
    let Some(trip) = find(ctx, profile)? else {
        return Ok(());
    };
    Err(Error::TrippedBefore {
        message: format!(
            "this version of profile {} ({}) tripped a health gate on this host at {}: {}; nothing was changed",
            trip.profile,
            &trip.fingerprint[..12.min(trip.fingerprint.len())],
            trip.time,
            trip.gates.join("; ")
        ),
        help: Some(
            "fix the profile (a changed profile is a new version), or apply this one again on purpose with --retry-tripped".into(),
        ),
    })
}

/// Every recorded trip, oldest first; an unreadable or damaged file is an error (a refusal we
/// cannot check is not skipped silently).
pub fn all(ctx: &Context) -> Result<Vec<Trip>> {
    let Some(bytes) = ctx.store.read_file(FILE)? else {
        return Ok(Vec::new());
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        Error::state(
            format!("{} is damaged: {e}", ctx.store.dir().join(FILE).display()),
            Some("delete it to forget which profile versions tripped a gate here"),
        )
    })
}
