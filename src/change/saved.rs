//! Saved plans (`sysprof diff PROFILE --out plan.json`, then `sysprof apply plan.json`): what a
//! review approved is exactly what is applied, or nothing is.
//!
//! A plan pins the profile (path and fingerprint), the target (host id, kernel release, sysctl
//! tree and network namespace) and the change the engine would make: every key's value before
//! and after, and the persisted file before and after. It is sealed with an HMAC-SHA256 under a
//! key kept in the state dir (`plan.key`, 0600, made on first use), so a plan altered after it
//! was written — or made with another state dir or on another host — is refused. Applying it
//! re-plans under the lock and goes ahead only when the new change equals the saved one.

use std::io::Read;
use std::path::{Path, PathBuf};

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

use crate::change::context::Context;
use crate::change::persist;
use crate::change::record::{Change, KeyChange, PersistChange, ProfileRef};
use crate::change::store;
use crate::error::{Error, Result};

/// The `format` field that marks a saved plan.
pub const FORMAT: &str = "sysprof-plan";

/// Largest plan file read.
const MAX_PLAN_BYTES: u64 = 16 << 20;

/// The plan key's file in the state dir.
const KEY_FILE: &str = "plan.key";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Where a plan may be applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanTarget {
    /// `/etc/machine-id` (`None` where there is none, e.g. in a bare container).
    pub host_id: Option<String>,
    /// The kernel release.
    pub kernel: String,
    /// The sysctl tree and network namespace (`SysctlTree::identity`).
    pub tree: String,
    /// The `--netns` name or path, when one was given.
    pub netns: Option<String>,
}

/// A saved plan, as written to disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPlan {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always 1.
    pub version: u32,
    /// When it was made (RFC 3339).
    pub created: String,
    /// The profile it applies.
    pub profile: ProfileRef,
    /// Where it may be applied.
    pub target: PlanTarget,
    /// Keys an earlier apply set that the profile no longer names are kept, not released.
    pub keep_released: bool,
    /// The key writes, in order.
    pub changes: Vec<KeyChange>,
    /// The persisted file before and after (`None`: unchanged, or persisting is off).
    pub persist: Option<PersistChange>,
    /// HMAC-SHA256 (hex) of the plan without this field, under the state dir's plan key.
    #[serde(default)]
    pub seal: String,
}

impl SavedPlan {
    /// The plan for `change`, sealed with the state dir's key.
    pub fn new(ctx: &Context, change: &Change, keep_released: bool) -> Result<Self> {
        let profile = change
            .profile
            .clone()
            .ok_or_else(|| Error::state("a saved plan needs a profile", None::<&str>))?;
        let mut plan = Self {
            format: FORMAT.into(),
            version: 1,
            created: humantime::format_rfc3339_seconds(ctx.env.now()).to_string(),
            profile,
            target: target(ctx)?,
            keep_released,
            changes: change.keys.clone(),
            persist: change.persist.clone(),
            seal: String::new(),
        };
        plan.seal = seal(ctx, &plan)?;
        Ok(plan)
    }

    /// Writes it to `path` (0644, atomically).
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self).expect("a plan serialises");
        text.push('\n');
        let (dir, name) = split(path)?;
        store::write_atomic_mode(&dir, &name, text.as_bytes(), 0o644)
    }

    /// Refuses a plan whose seal does not verify or whose target is not this one.
    pub fn verify(&self, ctx: &Context) -> Result<()> {
        if self.version != 1 {
            return Err(stale(format!(
                "plan version {} is not supported",
                self.version
            )));
        }
        let mut mac = mac(ctx)?;
        mac.update(&body(self));
        let sealed = hex_decode(&self.seal).unwrap_or_default();
        if mac.verify_slice(&sealed).is_err() {
            return Err(stale(
                "its seal does not verify: the file was altered, or it was made with another state dir or on another host".into(),
            ));
        }
        let here = target(ctx)?;
        let same = |t: &PlanTarget| (t.host_id.clone(), t.kernel.clone(), t.tree.clone());
        if same(&here) != same(&self.target) {
            return Err(stale(format!(
                "it was made for {}, this is {}",
                describe(&self.target),
                describe(&here)
            )));
        }
        Ok(())
    }

    /// Refuses `change` (what applying the plan's profile would do now) unless it is exactly
    /// the saved one: same keys, same values before and after, same persisted file.
    pub fn check(&self, ctx: &Context, change: &Change) -> Result<()> {
        if change.profile.as_ref().map(|p| &p.sha256) != Some(&self.profile.sha256) {
            return Err(stale(format!(
                "profile {} changed since the plan was made",
                self.profile.path
            )));
        }
        for saved in &self.changes {
            let now = ctx.tree.read(&saved.key)?;
            if !now.same_as(&saved.before) {
                return Err(stale(format!(
                    "{} is {now} now, the plan expected {}",
                    saved.key, saved.before
                )));
            }
        }
        let same = self.changes.len() == change.keys.len()
            && self.changes.iter().zip(&change.keys).all(|(a, b)| {
                a.key == b.key && a.after.same_as(&b.after) && a.released == b.released
            });
        if !same {
            return Err(stale(format!(
                "it plans {} key write(s), the profile now calls for {}",
                self.changes.len(),
                change.keys.len()
            )));
        }
        self.check_persisted(ctx, change)
    }

    /// The persisted file must still be what the plan saw (whether or not this apply writes it:
    /// a confirmed apply persists later).
    fn check_persisted(&self, ctx: &Context, change: &Change) -> Result<()> {
        let Some(saved) = &self.persist else {
            return Ok(());
        };
        let now = persist::read(Path::new(&saved.path), ctx.store.euid())?;
        if now != saved.before {
            return Err(stale(format!(
                "{} changed since the plan was made",
                saved.path
            )));
        }
        match &change.persist {
            Some(p) if p.after != saved.after => Err(stale(format!(
                "{} would be written differently",
                saved.path
            ))),
            _ => Ok(()),
        }
    }
}

/// Reads `path` as a saved plan; `None` when it is not one (a profile), or cannot be opened
/// (the profile loader then says why, with the file's place). Only the first 4 KiB are read
/// unless they look like a plan; then the rest, from the same open file.
pub fn load(path: &Path) -> Result<Option<SavedPlan>> {
    let Ok(mut file) = crate::files::open(path, crate::files::Policy::input(MAX_PLAN_BYTES)) else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    let read = |file: &mut std::fs::File, bytes: &mut Vec<u8>, limit: u64| {
        file.take(limit)
            .read_to_end(bytes)
            .map_err(|e| Error::io("read", path, e))
    };
    read(&mut file, &mut bytes, 4096)?;
    let looks = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        && String::from_utf8_lossy(&bytes).contains(FORMAT);
    if !looks {
        return Ok(None);
    }
    read(&mut file, &mut bytes, MAX_PLAN_BYTES)?;
    let plan: SavedPlan = serde_json::from_slice(&bytes)
        .map_err(|e| stale(format!("{} is not a valid saved plan: {e}", path.display())))?;
    if plan.format != FORMAT {
        return Ok(None);
    }
    Ok(Some(plan))
}

/// The error for a plan that no longer applies (exit 10, nothing written).
fn stale(why: String) -> Error {
    Error::PlanStale {
        message: format!("the saved plan cannot be applied: {why}"),
        help: Some(
            "nothing was written; make a new plan with `sysprof diff PROFILE --out FILE`, review it, and apply that".into(),
        ),
    }
}

fn target(ctx: &Context) -> Result<PlanTarget> {
    Ok(PlanTarget {
        host_id: ctx.env.machine_id().ok(),
        kernel: ctx.env.identity().kernel,
        tree: ctx.tree.identity()?,
        netns: ctx.netns.clone(),
    })
}

fn describe(t: &PlanTarget) -> String {
    format!(
        "host {}, kernel {}, sysctl tree {}",
        t.host_id.as_deref().unwrap_or("(no machine-id)"),
        t.kernel,
        t.tree
    )
}

/// The bytes sealed: the plan serialised without its seal.
fn body(plan: &SavedPlan) -> Vec<u8> {
    let mut unsealed = plan.clone();
    unsealed.seal.clear();
    serde_json::to_vec(&unsealed).expect("a plan serialises")
}

fn seal(ctx: &Context, plan: &SavedPlan) -> Result<String> {
    let mut mac = mac(ctx)?;
    mac.update(&body(plan));
    Ok(mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The HMAC under the state dir's plan key, made (32 random bytes, 0600) when missing.
fn mac(ctx: &Context) -> Result<HmacSha256> {
    let key = match ctx.store.read_file(KEY_FILE)? {
        Some(key) => key,
        None => {
            let mut key = vec![0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut key))
                .map_err(|e| Error::io("read", Path::new("/dev/urandom"), e))?;
            ctx.store.write_new_file(KEY_FILE, &key)?;
            ctx.store.read_file(KEY_FILE)?.unwrap_or(key)
        }
    };
    Ok(HmacSha256::new_from_slice(&key).expect("HMAC takes any key length"))
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    (text.len() % 2 == 0)
        .then(|| {
            (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
                .collect()
        })
        .flatten()
}

fn split(path: &Path) -> Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::Input {
            message: format!("{} is not a file name", path.display()),
            help: None,
        })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        assert_eq!(hex_decode("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(hex_decode("0"), None);
        assert_eq!(hex_decode("zz"), None);
    }
}
