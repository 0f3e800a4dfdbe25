//! The one error type of sysprof, and the mapping from errors to exit codes.
//!
//! Every variant carries the context an operator needs to act (file, line, key, path, rule).
//! Messages are lowercase phrases; `help` lines are rendered by the CLI. This module must not
//! print anything.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use nix::libc;

/// A position in an input file (a profile, a sysctl.d file, a hosts file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    /// The file as the user named it (parents: joined to the child's directory).
    pub file: Arc<str>,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

impl Location {
    /// Line 1, column 1 of `file`: for errors about a file as a whole.
    pub fn start(file: impl Into<Arc<str>>) -> Self {
        Self {
            file: file.into(),
            line: 1,
            col: 1,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// The candidate most like `word` (Jaro-Winkler above 0.85), for "did you mean" help lines.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Longest piece of input repeated in a message.
pub const MAX_ECHO: usize = 80;

/// Longest message shown whole: a finding or error that repeats a huge value is cut here.
pub const MAX_MESSAGE: usize = 500;

/// `text` as repeated in a message: at most [`MAX_ECHO`] characters, then `…`.
pub fn shorten(text: &str) -> String {
    shorten_to(text, MAX_ECHO)
}

/// `text` cut to at most `max` characters, then `…`.
pub fn shorten_to(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Documented process exit codes. `--help` and README.md list the same table.
pub mod exit {
    /// Success; for `diff --exit-code`, nothing to change.
    pub const OK: i32 = 0;
    /// Unexpected failure (I/O on the state dir, a bug).
    pub const FAILURE: i32 = 1;
    /// `diff --exit-code` / `apply --dry-run --exit-code`: changes are pending.
    pub const CHANGES_PENDING: i32 = 2;
    /// The input is invalid: unreadable or malformed profile, bad key, validation errors.
    pub const INVALID_INPUT: i32 = 3;
    /// The kernel refused a change; every key already written was restored.
    pub const KERNEL_REFUSED: i32 = 4;
    /// A change failed AND restoring the old values failed: the host needs attention.
    pub const INCOMPLETE_UNDO: i32 = 5;
    /// The state store refused: lock held, snapshot missing or tampered, nothing to roll back.
    pub const STATE: i32 = 6;
    /// The environment is unusable: sysctl root or network namespace missing, permission denied.
    pub const ENVIRONMENT: i32 = 7;
    /// A health gate tripped (`apply --watch` rolled the change back; `health` found it).
    pub const GATE_TRIPPED: i32 = 8;
    /// `apply --stage`: this host's cohort is not in the stage, so nothing was changed.
    pub const NOT_IN_STAGE: i32 = 9;
    /// `apply PLAN.json`: the saved plan no longer matches the host (a key or the persisted file
    /// changed, another target, the profile or the plan file altered); nothing was written.
    pub const PLAN_STALE: i32 = 10;
    /// Command-line usage error.
    pub const USAGE: i32 = 64;

    /// The table rendered in `--help` and README.md.
    pub const TABLE: &[(i32, &str)] = &[
        (OK, "success (diff: nothing to change)"),
        (FAILURE, "unexpected failure"),
        (CHANGES_PENDING, "diff --exit-code: changes are pending"),
        (
            INVALID_INPUT,
            "invalid profile, key or value (nothing was changed)",
        ),
        (
            KERNEL_REFUSED,
            "the kernel refused a write; all keys restored",
        ),
        (
            INCOMPLETE_UNDO,
            "a write failed and restoring failed too: check the host",
        ),
        (
            STATE,
            "state store: lock busy, snapshot missing or corrupt, nothing to roll back",
        ),
        (
            ENVIRONMENT,
            "sysctl root, network namespace or permissions unusable",
        ),
        (
            GATE_TRIPPED,
            "a health gate tripped (apply --watch rolled the change back)",
        ),
        (
            NOT_IN_STAGE,
            "apply --stage: this host is not in the stage (nothing was changed)",
        ),
        (
            PLAN_STALE,
            "apply PLAN: the saved plan no longer matches this host (nothing was changed)",
        ),
        (USAGE, "command-line usage error"),
    ];
}

/// How a kernel read or write failed, from the errno the kernel returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelFault {
    /// ENOENT: the key does not exist here (removed, module not loaded, init-namespace only).
    NotFound,
    /// EACCES / EPERM: read-only key, or no privilege over this namespace.
    PermissionDenied,
    /// EINVAL: the kernel rejected the value (out of range, malformed).
    InvalidValue,
    /// EROFS: /proc/sys is mounted read-only (typical in containers).
    ReadOnlyFs,
    /// ELOOP / EXDEV: the path leaves the sysctl root or crosses a symlink.
    Escapes,
    /// The value read back differs from the value written.
    NotRetained,
    /// Any other errno.
    Other(i32),
}

impl KernelFault {
    /// Classifies an I/O error from open/read/write on a sysctl file.
    pub fn from_io(err: &io::Error) -> Self {
        match err.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => Self::NotFound,
            Some(libc::EACCES) | Some(libc::EPERM) => Self::PermissionDenied,
            Some(libc::EINVAL) | Some(libc::ERANGE) => Self::InvalidValue,
            Some(libc::EROFS) => Self::ReadOnlyFs,
            Some(libc::ELOOP) | Some(libc::EXDEV) => Self::Escapes,
            Some(code) => Self::Other(code),
            None => Self::Other(0),
        }
    }

    fn describe(self) -> String {
        match self {
            Self::NotFound => "no such key on this kernel or in this namespace".into(),
            Self::PermissionDenied => {
                "permission denied (read-only key, or not privileged here)".into()
            }
            Self::InvalidValue => "the kernel rejected the value as invalid".into(),
            Self::ReadOnlyFs => "the sysctl tree is mounted read-only".into(),
            Self::Escapes => "the path leaves the sysctl root or crosses a symlink".into(),
            Self::NotRetained => "the kernel did not keep the value written".into(),
            Self::Other(code) => io::Error::from_raw_os_error(code).to_string(),
        }
    }
}

/// All errors sysprof reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done: "read", "write", "create", …
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A profile is malformed (YAML syntax, wrong type, unknown field).
    #[error("{at}: {message}")]
    Profile {
        /// Where in which file.
        at: Location,
        /// What is wrong.
        message: String,
        /// How to fix it, when known.
        help: Option<String>,
        /// The line of the file `at` points into, for a caret under the column; only ever
        /// taken from a file that parsed as a profile (never echo a file that is not one).
        snippet: Option<String>,
    },
    /// A sysctl key is malformed or could leave the sysctl root.
    #[error("invalid sysctl key {key:?}: {reason}")]
    Key {
        /// The key as written.
        key: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A profile's `extends` chain loops.
    #[error("{}profile inheritance forms a cycle: {}", at.as_ref().map(|at| format!("{at}: ")).unwrap_or_default(), chain.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" -> "))]
    ExtendsCycle {
        /// The `extends` entry that closes the loop.
        at: Option<Location>,
        /// The files in the loop, first repeated at the end.
        chain: Vec<PathBuf>,
    },
    /// Validation found errors (the findings were reported separately).
    #[error("{file}: validation failed with {errors} error(s)")]
    Invalid {
        /// The profile.
        file: String,
        /// Number of error findings.
        errors: usize,
        /// The findings as JSON, for `--format json` (human output printed them already).
        findings: Option<serde_json::Value>,
    },
    /// The schema data is malformed.
    #[error("schema {file}: {message}")]
    Schema {
        /// Which schema file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A kernel read or write failed.
    #[error("{op} {key}: {}{}", fault.describe(), value.as_ref().map(|v| format!(" (value {v:?})")).unwrap_or_default())]
    Kernel {
        /// "read" or "write".
        op: &'static str,
        /// The key, dotted.
        key: String,
        /// The classified errno.
        fault: KernelFault,
        /// The value being written, if any.
        value: Option<String>,
    },
    /// A change failed part-way; earlier writes were undone (see `undo_failures`).
    #[error("{cause}; {undone} key(s) restored{}", if undo_failures.is_empty() { String::new() } else { format!(", {} could NOT be restored: {}", undo_failures.len(), undo_failures.join("; ")) })]
    Aborted {
        /// The failure that stopped the change.
        cause: Box<Error>,
        /// How many keys were restored.
        undone: usize,
        /// Each restore that itself failed.
        undo_failures: Vec<String>,
    },
    /// Another sysprof holds the state lock.
    #[error("another sysprof is changing this host (lock {}{})", path.display(), holder.map(|p| format!(" held by pid {p}")).unwrap_or_default())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid, if it wrote one.
        holder: Option<u32>,
    },
    /// The snapshot store refused an operation.
    #[error("{message}")]
    State {
        /// What is wrong.
        message: String,
        /// How to fix it, when known.
        help: Option<String>,
    },
    /// This version of the profile tripped a health gate here before (exit 8): nothing was
    /// written.
    #[error("{message}")]
    TrippedBefore {
        /// Which version, when, and what tripped.
        message: String,
        /// How to go on.
        help: Option<String>,
    },
    /// A saved plan that no longer matches the host (exit 10): nothing was written.
    #[error("{message}")]
    PlanStale {
        /// Why it does not apply.
        message: String,
        /// What to do instead.
        help: Option<String>,
    },
    /// A name given on the command line means nothing here (exit 3, like any invalid input).
    #[error("{message}")]
    Input {
        /// What is wrong.
        message: String,
        /// How to fix it, when known.
        help: Option<String>,
    },
    /// The sysctl root or a network namespace cannot be used.
    #[error("{message}")]
    Environment {
        /// What is wrong.
        message: String,
        /// How to fix it, when known.
        help: Option<String>,
    },
}

impl Error {
    /// Builds an [`Error::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::State`] with an optional help line.
    pub fn state(message: impl Into<String>, help: Option<&str>) -> Self {
        Self::State {
            message: message.into(),
            help: help.map(str::to_owned),
        }
    }

    /// Builds an [`Error::Environment`] with an optional help line.
    pub fn environment(message: impl Into<String>, help: Option<&str>) -> Self {
        Self::Environment {
            message: message.into(),
            help: help.map(str::to_owned),
        }
    }

    /// Where in which file the error is, its message without the location, and the quoted
    /// line (for errors that point into an input file).
    pub fn located(&self) -> Option<(&Location, String, Option<&str>)> {
        match self {
            Self::Profile {
                at,
                message,
                snippet,
                ..
            } => Some((at, message.clone(), snippet.as_deref())),
            Self::ExtendsCycle {
                at: Some(at),
                chain,
            } => {
                let chain: Vec<String> = chain.iter().map(|p| p.display().to_string()).collect();
                let message = format!("profile inheritance forms a cycle: {}", chain.join(" -> "));
                Some((at, message, None))
            }
            _ => None,
        }
    }

    /// Findings that go with the error into a JSON error document, if any.
    pub fn findings(&self) -> Option<&serde_json::Value> {
        match self {
            Self::Invalid { findings, .. } => findings.as_ref(),
            _ => None,
        }
    }

    /// Whether this is a write to a pipe whose reader has gone (`sysprof history | head`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }

    /// The process exit code for this error (see [`exit`]).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Io { .. } => exit::FAILURE,
            Self::Profile { .. }
            | Self::Key { .. }
            | Self::ExtendsCycle { .. }
            | Self::Invalid { .. } => exit::INVALID_INPUT,
            Self::Schema { .. } | Self::Input { .. } => exit::INVALID_INPUT,
            Self::Kernel {
                fault: KernelFault::InvalidValue | KernelFault::NotRetained,
                ..
            } => exit::KERNEL_REFUSED,
            Self::Kernel { .. } => exit::ENVIRONMENT,
            Self::Aborted {
                undo_failures,
                cause,
                ..
            } => {
                if undo_failures.is_empty() {
                    // Everything was restored: the exit code is the cause's own (the kernel
                    // refusing a value is 4; a history that would not take the commit is 1).
                    cause.exit_code()
                } else {
                    exit::INCOMPLETE_UNDO
                }
            }
            Self::Locked { .. } | Self::State { .. } => exit::STATE,
            Self::PlanStale { .. } => exit::PLAN_STALE,
            Self::TrippedBefore { .. } => exit::GATE_TRIPPED,
            Self::Environment { .. } => exit::ENVIRONMENT,
        }
    }

    /// The help line for this error, when sysprof knows the fix.
    pub fn help(&self) -> Option<String> {
        match self {
            Self::Profile { help, .. }
            | Self::PlanStale { help, .. }
            | Self::TrippedBefore { help, .. }
            | Self::Input { help, .. }
            | Self::State { help, .. }
            | Self::Environment { help, .. } => help.clone(),
            Self::Locked { .. } => Some("wait for it to finish, or raise --lock-timeout".into()),
            Self::Kernel {
                fault: KernelFault::NotFound,
                ..
            } => Some(
                "check the kernel version, loaded modules and whether this namespace has the key"
                    .into(),
            ),
            Self::Kernel {
                fault: KernelFault::PermissionDenied,
                ..
            } => Some("run as root; in a child network namespace global keys are read-only".into()),
            Self::Aborted { undo_failures, .. } if !undo_failures.is_empty() => Some(
                "the keys listed were left changed: run `sysprof status` and restore them by hand"
                    .into(),
            ),
            Self::ExtendsCycle { .. } => Some("remove one of the `extends` entries".into()),
            _ => None,
        }
    }
}
