//! The processes around a pending change: the applying process (the "owner" a watch depends
//! on) and the detached watcher that enforces the deadline.
//!
//! The watcher is started through the [`Env`] so that nothing that kills the caller reaches it:
//! in its own session and process group (setsid), or as a transient systemd unit outside the
//! login session's cgroup. Processes are identified by pid plus start time, since pids are
//! reused.

use serde::{Deserialize, Serialize};

use crate::env::Env;

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
    pub fn current(env: &dyn Env) -> Option<Self> {
        let pid = env.pid();
        env.process(pid).map(|p| Self {
            pid,
            start: p.start,
        })
    }

    /// Whether the process still runs (not exited, not a zombie, pid not reused).
    pub fn alive(&self, env: &dyn Env) -> bool {
        env.process(self.pid)
            .is_some_and(|p| p.start == self.start && !p.zombie)
    }
}

/// Whether a process runs (exists and is not a zombie).
pub fn running(env: &dyn Env, pid: u32) -> bool {
    env.process(pid).is_some_and(|p| !p.zombie)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::SYSTEM;

    #[test]
    fn own_process_is_alive_and_a_stranger_is_not() {
        let me = Owner::current(&SYSTEM).unwrap();
        assert!(me.alive(&SYSTEM));
        let other = Owner {
            pid: me.pid,
            start: me.start + 1,
        };
        assert!(!other.alive(&SYSTEM), "same pid, other process");
        assert!(!running(&SYSTEM, u32::MAX - 1));
    }
}
