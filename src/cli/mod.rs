//! Command-line definitions (clap) and their conversion into a [`Context`].
//!
//! One definition per flag drives `--help` (and, later, completions and the man page). Raw
//! flags are turned into validated settings here: the sysctl root is opened after entering
//! `--netns`, defaults that depend on the namespace are resolved, the target kernel is read.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::change::context::{Context, Identity};
use crate::change::persist::{self, DEFAULT_SYSCTL_D};
use crate::change::store::{DEFAULT_STATE_DIR, Store};
use crate::error::{Result, exit};
use crate::kernel::netns;
use crate::kernel::{PROC_SYS, SysctlTree};
use crate::schema::validate::Target;
use crate::schema::{Schema, Version};

pub mod commands;
pub mod lean;
pub mod render;
pub mod rollout;

/// Declarative, validated, reversible Linux sysctl profiles.
#[derive(Debug, Parser)]
#[command(name = "sysprof", version, about, after_help = exit_code_help(), max_term_width = 100)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: Global,
    /// The command.
    #[command(subcommand)]
    pub command: lean::Only<Command>,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct Global {
    /// Sysctl root to read and write (a fake tree in tests).
    #[arg(long, global = true, env = "SYSPROF_ROOT", default_value = PROC_SYS, value_name = "DIR")]
    pub root: PathBuf,
    /// State directory (snapshots, history, journal, lock). Default /var/lib/sysprof, or
    /// /var/lib/sysprof/netns/NAME with --netns.
    #[arg(long, global = true, env = "SYSPROF_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Directory of the persisted file 99-sysprof.conf. Default /etc/sysctl.d; with --netns
    /// nothing is persisted unless this is given (boot would apply it to the host).
    #[arg(
        long = "sysctl-d",
        global = true,
        env = "SYSPROF_SYSCTL_D",
        value_name = "DIR"
    )]
    pub sysctl_d: Option<PathBuf>,
    /// Do not write the persisted sysctl.d file.
    #[arg(long, global = true)]
    pub no_persist: bool,
    /// Enter this network namespace first: a name under /run/netns or a path.
    #[arg(long, global = true, value_name = "NAME|PATH")]
    pub netns: Option<String>,
    /// Use this schema directory (keys.yaml, rules.yaml) instead of the built-in one.
    #[arg(long, global = true, env = "SYSPROF_SCHEMA", value_name = "DIR")]
    pub schema: Option<PathBuf>,
    /// Validate for this kernel version instead of the running one.
    #[arg(long, global = true, value_name = "X.Y")]
    pub kernel: Option<Version>,
    /// Validate for this Kubernetes version (pod profiles).
    #[arg(long, global = true, value_name = "X.Y")]
    pub k8s: Option<Version>,
    /// Treat warnings as errors.
    #[arg(long, global = true)]
    pub deny_warnings: bool,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// When to color human output (NO_COLOR is respected).
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
    /// Seconds to wait for another sysprof to finish.
    #[arg(long, global = true, default_value_t = 30, value_name = "SECS")]
    pub lock_timeout: u64,
    /// Root of the sysctl.d directories boot reads (etc/sysctl.d, run/…, usr/local/lib/…,
    /// usr/lib/…, etc/sysctl.conf), for `import --system` and boot-override warnings. Default /;
    /// warnings are checked only for the host's own /proc/sys unless this is given.
    #[arg(long, global = true, env = "SYSPROF_BOOT_ROOT", value_name = "DIR")]
    pub boot_root: Option<PathBuf>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tables and compiler-style diagnostics.
    Human,
    /// One JSON document on stdout.
    Json,
}

/// Color choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// Color on a terminal unless NO_COLOR is set.
    Auto,
    /// Always color.
    Always,
    /// Never color.
    Never,
}

/// The commands.
// `defer`: a subcommand's arguments are built only when it runs, not for every invocation
// (start-up time and memory; `--help` still lists every command).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Check profiles against the schema and the target kernel; changes nothing.
    Validate {
        /// Profile files.
        #[arg(required = true)]
        profiles: Vec<PathBuf>,
    },
    /// Show what applying a profile would change, key by key.
    Diff {
        /// Profile file.
        profile: PathBuf,
        /// Exit 2 when changes are pending, 0 when in sync.
        #[arg(long)]
        exit_code: bool,
    },
    /// Validate, snapshot, write all-or-nothing, read back, persist.
    Apply {
        /// Profile file.
        profile: PathBuf,
        /// Show the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Staged, watched and confirmed applies.
        #[command(flatten)]
        safe: rollout::SafeApply,
    },
    /// List the recorded changes, newest last.
    History,
    /// Show one snapshot in full.
    Show {
        /// Snapshot id (or a unique prefix).
        id: String,
    },
    /// Restore the state from before the last apply (or before --to ID).
    Rollback {
        /// Restore the state from just before this history entry.
        #[arg(long, value_name = "ID")]
        to: Option<String>,
        /// Show what would be restored and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show unfinished changes, the lock holder and the last change.
    Status,
    /// Finish or undo a change that was interrupted (every mutating command does this first).
    Recover,
    /// Everything the schema knows about a key or a rule.
    Explain {
        /// A sysctl key or a rule id.
        name: String,
    },
    /// Turn sysctl.conf / sysctl.d files into a profile (YAML on stdout).
    Import {
        /// Files, applied in this order (later files override earlier ones).
        #[arg(required_unless_present = "system")]
        files: Vec<PathBuf>,
        /// Read the files boot applies, in systemd-sysctl's order (under --boot-root), first.
        #[arg(long)]
        system: bool,
        /// The profile's name.
        #[arg(long, default_value = "imported")]
        name: String,
        /// Write the profile to this file instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Write the running kernel's values as a profile (YAML on stdout).
    Export {
        /// Only keys under this prefix (`net.ipv4`, `net/core`).
        #[arg(long, value_name = "KEY")]
        prefix: Option<String>,
        /// Only keys whose value differs from the schema's default for the target kernel.
        #[arg(long)]
        non_default: bool,
        /// The profile's name.
        #[arg(long, default_value = "exported")]
        name: String,
        /// Write the profile to this file instead of stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Diagnose conntrack, TIME_WAIT, PAWS, accept/SYN queues, ports, CLOSE_WAIT, FIN_WAIT2.
    Doctor {
        /// The per-namespace tables (netstat, snmp, tcp, tcp6, stat/nf_conntrack).
        #[arg(long, default_value = "/proc/net", value_name = "DIR")]
        proc_net: PathBuf,
        /// Conntrack fill that counts as near full, in percent.
        #[arg(long, default_value_t = 90, value_name = "PCT")]
        conntrack_full: u32,
        /// TIME_WAIT sockets toward one destination, in percent of the ephemeral port range.
        #[arg(long, default_value_t = 50, value_name = "PCT")]
        port_use: u32,
        /// CLOSE_WAIT sockets that count as many.
        #[arg(long, default_value_t = 32, value_name = "N")]
        close_wait: usize,
        /// FIN_WAIT2 sockets that count as many.
        #[arg(long, default_value_t = 256, value_name = "N")]
        fin_wait2: usize,
        /// Report a cumulative counter (since boot or namespace creation) from this value on.
        #[arg(long, default_value_t = 1, value_name = "N")]
        min_count: u64,
    },
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into --dir.
    Man {
        /// Write sysprof.1 and sysprof-COMMAND.1 here.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// List the keys the schema knows, or print the profile format as JSON Schema.
    Schema {
        /// Print the JSON Schema of the profile format (for editors).
        #[arg(long)]
        json_schema: bool,
    },
    /// Health gates, confirmations, rollout plans and pod sysctls.
    #[command(flatten)]
    Rollout(rollout::RolloutCommand),
}

fn exit_code_help() -> String {
    let rows: Vec<String> = exit::TABLE
        .iter()
        .map(|(code, what)| format!("  {code:>3}  {what}"))
        .collect();
    format!("Exit codes:\n{}", rows.join("\n"))
}

impl Global {
    /// Loads the schema (built-in or `--schema`).
    pub fn load_schema(&self) -> Result<Schema> {
        match &self.schema {
            Some(dir) => Schema::from_dir(dir),
            None => Schema::embedded(),
        }
    }

    /// The validation target: `--kernel`/`--k8s`, else the running kernel and its memory.
    pub fn target(&self) -> Target {
        // uname only: Identity::current() would also look the user up (nsswitch, /etc/passwd).
        let running = nix::sys::utsname::uname()
            .ok()
            .and_then(|u| u.release().to_str()?.parse().ok())
            .unwrap_or(Version(6, 1, 0));
        let mem_bytes = match self.kernel {
            Some(_) => None,
            None => nix::sys::sysinfo::sysinfo().ok().map(|i| i.ram_total()),
        };
        let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .unwrap_or(4096) as u64;
        Target {
            kernel: self.kernel.unwrap_or(running),
            k8s: self.k8s,
            mem_bytes,
            page_size,
            child_netns: self.netns.is_some(),
        }
    }

    /// Enters `--netns`, opens the tree and builds the context.
    pub fn context(&self) -> Result<Context> {
        if let Some(ns) = &self.netns {
            netns::enter(ns)?;
        }
        let tree = SysctlTree::open(&self.root)?;
        let state_dir = self.state_dir.clone().unwrap_or_else(|| match &self.netns {
            Some(ns) => PathBuf::from(DEFAULT_STATE_DIR)
                .join("netns")
                .join(ns.replace('/', "_")),
            None => PathBuf::from(DEFAULT_STATE_DIR),
        });
        let persist_dir = match (&self.sysctl_d, &self.netns) {
            _ if self.no_persist => None,
            (Some(dir), _) => Some(dir.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(PathBuf::from(DEFAULT_SYSCTL_D)),
        };
        Ok(Context {
            tree,
            store: Store::new(state_dir),
            persist_file: persist_dir.map(|d| persist::file_in(&d)),
            schema: self.load_schema()?,
            target: self.target(),
            lock_timeout: Duration::from_secs(self.lock_timeout),
            netns: self.netns.clone(),
            identity: Identity::current,
            now: std::time::SystemTime::now,
        })
    }
}

/// Maps a clap error to its exit code (usage errors are 64, help/version 0).
pub fn usage_exit_code(err: &clap::Error) -> i32 {
    match err.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => exit::OK,
        _ => exit::USAGE,
    }
}
