//! The processes around a pending change: the applying process (the "owner" a watch depends
//! on) and the detached watcher that enforces the deadline.
//!
//! The watcher is started so that nothing that kills the caller reaches it: in its own session
//! and process group (setsid), or as a transient systemd unit outside the login session's cgroup.
//! Process identity is read from `/proc/PID/stat` (pid plus start time, since pids are reused).

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The applying process, identified beyond its pid (pids are reused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/PID/stat` field 22).
    pub start: u64,
}

impl Owner {
    /// The calling process.
    pub fn current() -> Option<Self> {
        let pid = std::process::id();
        proc_stat(pid).map(|(start, _)| Self { pid, start })
    }

    /// Whether the process still runs (not exited, not a zombie, pid not reused).
    pub fn alive(&self) -> bool {
        proc_stat(self.pid).is_some_and(|(start, state)| start == self.start && state != 'Z')
    }
}

/// Whether a process runs (exists and is not a zombie).
pub fn running(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(_, state)| state != 'Z')
}

/// (start time, state) of a process, from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(u64, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    Some((fields.get(19)?.parse().ok()?, state))
}

/// How the detached watcher is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launcher {
    /// `systemd-run --unit NAME`: a transient service, outside the login session's cgroup.
    SystemdRun(String),
    /// fork + setsid: its own session and process group, so neither the terminal's SIGHUP nor
    /// a kill of the caller's process group reaches it; re-parented to init when the caller exits.
    Fork,
}

impl Launcher {
    /// How `status` names it.
    pub fn describe(&self) -> String {
        match self {
            Self::SystemdRun(unit) => format!("systemd-run:{unit}"),
            Self::Fork => "fork".into(),
        }
    }
}

/// Starts `exe args` detached from the caller's session, output appended to `log`; returns its
/// pid when known (systemd owns a transient unit's process).
pub fn spawn_watcher(
    how: &Launcher,
    exe: &Path,
    args: &[OsString],
    log: &Path,
) -> Result<Option<u32>> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)
        .map_err(|e| Error::io("open", log, e))?;
    let err = out.try_clone().map_err(|e| Error::io("open", log, e))?;
    let failed = |e: std::io::Error| Error::io("start the watcher", exe, e);
    match how {
        Launcher::SystemdRun(unit) => {
            let status = Command::new("systemd-run")
                .args(["--unit", unit, "--collect", "--quiet", "--"])
                .arg(exe)
                .args(args)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .status()
                .map_err(failed)?;
            if !status.success() {
                return Err(Error::environment(
                    format!("systemd-run could not start the watcher ({status})"),
                    Some("pass --watcher fork"),
                ));
            }
            Ok(None)
        }
        Launcher::Fork => {
            let mut cmd = Command::new(exe);
            cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
            // SAFETY: setsid is async-signal-safe, as required between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    nix::unistd::setsid().map_err(std::io::Error::from)?;
                    Ok(())
                });
            }
            // Not waited for: it outlives us by design (init reaps it once we exit).
            let child = cmd.spawn().map_err(failed)?;
            Ok(Some(child.id()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_stat_is_readable() {
        let me = Owner::current().unwrap();
        assert!(me.alive());
        assert!(
            !Owner {
                pid: u32::MAX - 1,
                start: 0
            }
            .alive()
        );
    }
}
