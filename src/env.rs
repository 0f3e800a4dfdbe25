//! The process around the core: clock, sleep, who and where we are, other processes, spawning.
//!
//! The core never asks the operating system these things itself; it asks the [`Env`] it was
//! given (rustup's `Process` handle is the model). [`System`] is the real one. Tests substitute a
//! fixed clock or identity without touching the process, and the watcher, the health watch and
//! the record stamps all read time and processes through the same handle.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result};

/// Where the host id comes from unless `--host-id` is given.
pub const MACHINE_ID: &str = "/etc/machine-id";

/// Who and where, stamped on every record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `uid(name)`.
    pub user: String,
    /// Host name.
    pub host: String,
    /// Kernel release string.
    pub kernel: String,
}

/// What the kernel says about a running process (`/proc/PID/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Start time in clock ticks since boot (field 22): with the pid, names one process.
    pub start: u64,
    /// Whether it exited and waits to be reaped.
    pub zombie: bool,
}

/// How a detached process is started.
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

/// Everything the core asks of the process and the operating system around it.
pub trait Env: Sync {
    /// Wall-clock time (records, deadlines).
    fn now(&self) -> SystemTime;
    /// A monotonic instant (measuring windows and rates).
    fn monotonic(&self) -> Instant;
    /// Blocks the calling thread.
    fn sleep(&self, duration: Duration);
    /// User, host name and kernel release.
    fn identity(&self) -> Identity;
    /// This process's id.
    fn pid(&self) -> u32;
    /// The effective user id (the owner the state dir must have).
    fn euid(&self) -> u32;
    /// A process's start time and state, `None` when it does not exist.
    fn process(&self, pid: u32) -> Option<ProcessInfo>;
    /// The running sysprof binary (re-executed as the watcher).
    fn exe(&self) -> Result<PathBuf>;
    /// `/etc/machine-id`, trimmed.
    fn machine_id(&self) -> Result<String>;
    /// Whether systemd manages this host and `systemd-run` is on PATH.
    fn has_systemd_run(&self) -> bool;
    /// Starts `exe args` detached from the caller's session, output appended to `log` (0600);
    /// returns its pid when known (systemd owns a transient unit's process).
    fn spawn_detached(
        &self,
        how: &Launcher,
        exe: &Path,
        args: &[OsString],
        log: &Path,
    ) -> Result<Option<u32>>;
}

/// The real operating system.
#[derive(Debug, Clone, Copy, Default)]
pub struct System;

/// The one real [`Env`], for contexts that live as long as the process.
pub static SYSTEM: System = System;

impl Env for System {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn monotonic(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration)
    }

    fn identity(&self) -> Identity {
        let uid = nix::unistd::getuid().as_raw();
        let name = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|passwd| user_name(&passwd, uid))
            .unwrap_or_default();
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        Identity {
            user: format!("{uid}({name})"),
            host,
            kernel: kernel_release().unwrap_or_default(),
        }
    }

    fn pid(&self) -> u32 {
        std::process::id()
    }

    fn euid(&self) -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    fn process(&self, pid: u32) -> Option<ProcessInfo> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse_stat(&text)
    }

    fn exe(&self) -> Result<PathBuf> {
        std::env::current_exe().map_err(|e| Error::io("find", "the sysprof binary", e))
    }

    fn machine_id(&self) -> Result<String> {
        let text = std::fs::read_to_string(MACHINE_ID).map_err(|e| {
            Error::environment(
                format!("cannot read {MACHINE_ID} for the host id: {e}"),
                Some("pass --host-id ID (e.g. the inventory host name)"),
            )
        })?;
        let id = text.trim().to_owned();
        if id.is_empty() {
            return Err(Error::environment(
                format!("{MACHINE_ID} is empty"),
                Some("pass --host-id ID"),
            ));
        }
        Ok(id)
    }

    fn has_systemd_run(&self) -> bool {
        Path::new("/run/systemd/system").is_dir()
            && std::env::var_os("PATH").is_some_and(|path| {
                std::env::split_paths(&path).any(|d| d.join("systemd-run").is_file())
            })
    }

    fn spawn_detached(
        &self,
        how: &Launcher,
        exe: &Path,
        args: &[OsString],
        log: &Path,
    ) -> Result<Option<u32>> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
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
}

/// The real system with its wall clock stopped at a given time: deadlines, stamps and cohorts
/// become reproducible in tests while processes and files stay real.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub SystemTime);

impl Env for FixedClock {
    fn now(&self) -> SystemTime {
        self.0
    }
    fn monotonic(&self) -> Instant {
        SYSTEM.monotonic()
    }
    fn sleep(&self, duration: Duration) {
        SYSTEM.sleep(duration)
    }
    fn identity(&self) -> Identity {
        SYSTEM.identity()
    }
    fn pid(&self) -> u32 {
        SYSTEM.pid()
    }
    fn euid(&self) -> u32 {
        SYSTEM.euid()
    }
    fn process(&self, pid: u32) -> Option<ProcessInfo> {
        SYSTEM.process(pid)
    }
    fn exe(&self) -> Result<PathBuf> {
        SYSTEM.exe()
    }
    fn machine_id(&self) -> Result<String> {
        SYSTEM.machine_id()
    }
    fn has_systemd_run(&self) -> bool {
        SYSTEM.has_systemd_run()
    }
    fn spawn_detached(
        &self,
        how: &Launcher,
        exe: &Path,
        args: &[OsString],
        log: &Path,
    ) -> Result<Option<u32>> {
        SYSTEM.spawn_detached(how, exe, args, log)
    }
}

/// The running kernel's release string (`uname -r`).
pub fn kernel_release() -> Option<String> {
    nix::sys::utsname::uname()
        .ok()
        .map(|u| u.release().to_string_lossy().into_owned())
}

/// The name of `uid` in passwd(5) text. Read directly rather than through NSS (`getpwuid`): the
/// release binary is linked statically (see scripts/build-static), where NSS would need glibc's
/// shared modules at run time; a user known only to a directory service shows as its uid alone.
fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (id.parse() == Ok(uid)).then(|| name.to_owned())
    })
}

/// Start time and state from `/proc/PID/stat` text. The command name may contain spaces and
/// parentheses, so fields resume after the last `)`.
fn parse_stat(text: &str) -> Option<ProcessInfo> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    Some(ProcessInfo {
        start: fields.get(19)?.parse().ok()?,
        zombie: state == 'Z',
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_come_from_the_third_passwd_field() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n#comment\nbroken\nops:x:1000:1000::/home/ops:/bin/sh\n";
        assert_eq!(user_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_name(passwd, 1000).as_deref(), Some("ops"));
        assert_eq!(user_name(passwd, 1), None);
    }

    #[test]
    fn stat_lines_parse_past_odd_command_names() {
        let line = "4242 (a (b) c) Z 1 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 98765 0 0";
        assert_eq!(
            parse_stat(line),
            Some(ProcessInfo {
                start: 98765,
                zombie: true
            })
        );
        let me = SYSTEM.process(SYSTEM.pid()).unwrap();
        assert!(!me.zombie && me.start > 0);
        assert_eq!(SYSTEM.process(u32::MAX - 1), None);
    }
}
