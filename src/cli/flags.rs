//! Command-line flags: the raw values clap parses, before any of them is trusted.
//!
//! One definition per flag drives `--help`, the man page and the completions. Turning these into
//! validated settings (defaults that depend on `--netns`, the target kernel, paths) is
//! `settings`' job; nothing here touches the system.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::adopt::manifests::UnsafePattern;
use crate::canary::sample::PROC_NET;
use crate::cli::lean;
use crate::diagnose::doctor::Thresholds;
use crate::error::exit;
use crate::kernel::PROC_SYS;
use crate::profile::health::Gate;
use crate::schema::Version;

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

/// `diff`'s own flags.
#[derive(Debug, Args)]
pub struct DiffFlags {
    /// Exit 2 when changes are pending, 0 when in sync.
    #[arg(long)]
    pub exit_code: bool,
    /// Show keys sysprof set earlier that this profile no longer names as kept (and
    /// persisted) rather than released.
    #[arg(long)]
    pub keep_released: bool,
    /// Save the plan to FILE for review; `sysprof apply FILE` then applies exactly it, or
    /// nothing (exit 10) if the host changed meanwhile.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `schema`'s filters; all given must match.
#[derive(Debug, Args)]
pub struct SchemaFilter {
    /// Only keys under this prefix (`net.ipv4`, `vm.dirty_`).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// Only keys of this scope.
    #[arg(long, value_name = "SCOPE", value_parser = scope_name)]
    pub scope: Option<crate::schema::Scope>,
    /// Only keys whose name, caveat or sources contain WORD (any case).
    #[arg(long, value_name = "WORD")]
    pub search: Option<String>,
}

fn scope_name(text: &str) -> Result<crate::schema::Scope, String> {
    crate::schema::Scope::ALL
        .into_iter()
        .find(|s| s.name() == text)
        .ok_or_else(|| {
            let names: Vec<&str> = crate::schema::Scope::ALL.iter().map(|s| s.name()).collect();
            format!("one of {}", names.join(", "))
        })
}

/// Options every command accepts.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
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
    /// Refuse keys sysprof's catalogue does not describe (by default a key the target kernel
    /// has is a warning: the kernel is the authority).
    #[arg(long, global = true)]
    pub strict: bool,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// When to color human output (NO_COLOR is respected).
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto)]
    pub color: ColorWhen,
    /// Seconds to wait for another sysprof to finish.
    #[arg(long, global = true, default_value_t = 30, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=86_400))]
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
        /// What to show, and where to save the plan.
        #[command(flatten)]
        flags: DiffFlags,
    },
    /// Validate, snapshot, write all-or-nothing, read back, persist.
    #[command(after_help = APPLY_EXAMPLES)]
    Apply {
        /// Profile file, or a plan saved by `sysprof diff PROFILE --out FILE`.
        profile: PathBuf,
        /// Show the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Staged, watched and confirmed applies.
        #[command(flatten)]
        safe: SafeApply,
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
        /// Roll back the newest apply of the profile with this name still in effect.
        #[arg(long, value_name = "NAME", conflicts_with = "to")]
        profile: Option<String>,
        /// Show what would be restored and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also overwrite values another writer set after sysprof (refused otherwise).
        #[arg(long)]
        force: bool,
    },
    /// Show unfinished changes, the lock holder and the last change.
    Status,
    /// Finish or undo a change that was interrupted (every mutating command does this first).
    Recover {
        /// Move an interrupted change's journal aside without acting on it (when its record is
        /// missing or damaged and you have checked the host by hand).
        #[arg(long)]
        discard_journal: bool,
    },
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
        /// When a check reports.
        #[command(flatten)]
        thresholds: DoctorArgs,
    },
    /// Print Prometheus metrics (drift, last change, pending confirmation, unfinished change,
    /// health gates of --profile); read-only. --textfile DIR writes DIR/sysprof.prom instead.
    Metrics(MetricsArgs),
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
        /// Which keys to list.
        #[command(flatten)]
        filter: SchemaFilter,
    },
    /// Health gates, confirmations, rollout plans and pod sysctls.
    #[command(flatten)]
    Rollout(RolloutCommand),
}

fn exit_code_help() -> String {
    let rows: Vec<String> = exit::TABLE
        .iter()
        .map(|(code, what)| format!("  {code:>3}  {what}"))
        .collect();
    format!("Exit codes:\n{}", rows.join("\n"))
}

// `doctor` thresholds (no doc comment: clap would use it as the command's help).
#[allow(missing_docs)]
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Conntrack fill that counts as near full, in percent.
    #[arg(long, default_value_t = 90, value_name = "PCT")]
    pub conntrack_full: u32,
    /// TIME_WAIT sockets toward one destination, in percent of the ephemeral port range.
    #[arg(long, default_value_t = 50, value_name = "PCT")]
    pub port_use: u32,
    /// CLOSE_WAIT sockets that count as many.
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub close_wait: usize,
    /// FIN_WAIT2 sockets that count as many.
    #[arg(long, default_value_t = 256, value_name = "N")]
    pub fin_wait2: usize,
    /// Report a cumulative counter (since boot or namespace creation) from this value on.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub min_count: u64,
}

impl From<&DoctorArgs> for Thresholds {
    fn from(a: &DoctorArgs) -> Self {
        Thresholds {
            conntrack_full_pct: a.conntrack_full,
            port_use_pct: a.port_use,
            close_wait: a.close_wait,
            fin_wait2: a.fin_wait2,
            min_count: a.min_count,
        }
    }
}

// `metrics` options (no doc comment: clap would use it as the command's help).
#[allow(missing_docs)]
#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Write DIR/sysprof.prom atomically (node_exporter's textfile collector directory).
    #[arg(long, value_name = "DIR")]
    pub textfile: Option<PathBuf>,
    /// Also judge this profile's health gates once (sysprof_health_gate_*).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Span over which gate increases and rates are measured.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "1s")]
    pub over: Duration,
    /// Health gates (added to the profile's, or alone).
    #[command(flatten)]
    pub gates: GateArgs,
}

/// Parses argv (program name first), building only the subcommand that runs (see `lean`).
pub fn parse(args: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
    lean::parse::<Cli, Global, Command>(args)
}

/// Examples under `sysprof apply --help`.
const APPLY_EXAMPLES: &str = "\
Examples:
  # apply and persist; undo with `sysprof rollback`
  sysprof apply profiles/datacenter-client.yaml
  # show what would change, change nothing
  sysprof apply web.yaml --dry-run
  # roll back by itself if a health gate trips within 10 minutes
  sysprof apply web.yaml --watch 10m
  # roll back unless `sysprof confirm` runs within 5 minutes
  sysprof apply web.yaml --confirm-within 5m
  # change this host only if its cohort is in the profile's canary stage
  sysprof apply web.yaml --stage canary
  # apply exactly a reviewed plan, or nothing (exit 10)
  sysprof diff web.yaml --out plan.json && sysprof apply plan.json
  # inside the network namespace `blue`
  sysprof --netns blue apply web.yaml";

/// Maps a clap error to its exit code (usage errors are 64, help/version 0).
pub fn usage_exit_code(err: &clap::Error) -> i32 {
    match err.kind() {
        clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => exit::OK,
        _ => exit::USAGE,
    }
}

fn duration(raw: &str) -> Result<Duration, String> {
    crate::profile::section::parse_duration(raw)
}

// Health gate flags shared by `apply --watch` and `health` (no doc comment: see `SafeApply`).
#[allow(missing_docs)]
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Health gates")]
pub struct GateArgs {
    /// Add a gate (repeatable): COUNTER:LIMIT=N[:of=COUNTER], LIMIT one of max_increase,
    /// max_rate, max_ratio, max. E.g. TcpExt.ListenOverflows:max_increase=0.
    #[arg(long = "gate", value_name = "GATE", value_parser = Gate::parse_flag)]
    pub gates: Vec<Gate>,
    /// Sampling interval (default: the profile's `health.interval`, else 1s).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub interval: Option<Duration>,
    /// Directory of the kernel's network counters. /proc/net shows the namespace of the
    /// process reading it, so with --netns it is that namespace's.
    #[arg(long, value_name = "DIR", default_value = PROC_NET)]
    pub proc_net: PathBuf,
}

/// How the detached deadline watcher is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WatcherChoice {
    /// systemd-run where systemd is running, else fork.
    Auto,
    /// A transient systemd unit (survives the login session's cgroup being killed).
    SystemdRun,
    /// A re-exec of sysprof in its own session (setsid, double fork).
    Fork,
}

// `apply` flags for staged, watched and confirmed changes. Not a doc comment on purpose: clap
// turns a flattened struct's doc comment into the command's help text, replacing apply's own.
#[allow(missing_docs)]
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Staged, watched and confirmed apply")]
pub struct SafeApply {
    /// Apply without persisting, watch the health gates for DURATION, roll back (exit 8) when
    /// one trips; persist only after a healthy window.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub watch: Option<Duration>,
    /// Apply without persisting; roll back automatically unless `sysprof confirm` runs within
    /// DURATION (after the watch, with --watch). Survives this process and session dying.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub confirm_within: Option<Duration>,
    /// Apply only if this host's cohort is in the profile's rollout stage NAME (exit 9 if
    /// not); watches for the stage's `watch` time unless --watch is given.
    #[arg(long, value_name = "NAME")]
    pub stage: Option<String>,
    /// The id cohorts are computed from (default: /etc/machine-id).
    #[arg(long, value_name = "ID")]
    pub host_id: Option<String>,
    /// How the deadline watcher is started.
    #[arg(long, value_enum, default_value_t = WatcherChoice::Auto)]
    pub watcher: WatcherChoice,
    /// Keys sysprof set earlier that this profile no longer names stay at their values and are
    /// persisted too (by default they are released: restored to their values from before).
    #[arg(long)]
    pub keep_released: bool,
    /// Allow writes the kernel never lets go back until reboot (kernel.modules_disabled=1,
    /// kernel.yama.ptrace_scope=3, …): rollback could not restore them.
    #[arg(long)]
    pub allow_irreversible: bool,
    /// Apply a profile version whose watch tripped a health gate on this host before. By
    /// default that is refused (exit 8, nothing written), so a retry loop (a restarted pod, a
    /// rerun play) does not re-apply a change that just failed.
    #[arg(long)]
    pub retry_tripped: bool,
    /// During a watch, write a progress line with every gate's value each DURATION (default:
    /// 1m off a terminal; on a terminal one line is redrawn at every sample).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub progress_every: Option<Duration>,
    /// Health gates.
    #[command(flatten)]
    pub gates: GateArgs,
}

impl SafeApply {
    /// Whether any of these flags asks for more than a plain apply.
    pub fn active(&self) -> bool {
        self.watch.is_some() || self.confirm_within.is_some() || self.stage.is_some()
    }
}

/// Commands added for safe rollouts (flattened into the top-level command list).
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Check a profile's health gates once now (two samples --over apart), for cron/monitoring.
    Health {
        /// Profile file.
        profile: PathBuf,
        /// Span over which increases and rates are measured.
        #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "1s")]
        over: Duration,
        /// Health gates.
        #[command(flatten)]
        gates: GateArgs,
    },
    /// Keep the change awaiting confirmation: persist it and cancel its automatic rollback.
    Confirm,
    /// Preview a staged rollout.
    #[command(subcommand)]
    Rollout(RolloutPlanCommand),
    /// Kubernetes helpers.
    #[command(subcommand)]
    K8s(K8sCommand),
    /// (internal) Enforce a pending change's deadline; started detached by apply.
    #[command(name = "__watch-deadline", hide = true)]
    WatchDeadline {
        /// The pending change to watch.
        #[arg(long)]
        token: String,
    },
}

/// `sysprof rollout …`.
#[derive(Debug, Subcommand)]
pub enum RolloutPlanCommand {
    /// Show which hosts land in which stage of the profile's rollout.
    Plan {
        /// Profile file.
        profile: PathBuf,
        /// Hosts file: one `NAME [HOST_ID]` per line (the id defaults to the name).
        #[arg(long, value_name = "FILE")]
        hosts: PathBuf,
    },
}

/// `sysprof k8s …`.
#[derive(Debug, Subcommand)]
pub enum K8sCommand {
    /// Render a profile as a pod's securityContext.sysctls plus the kubelet
    /// allowedUnsafeSysctls it needs; refuses keys that are not namespaced (use --k8s X.Y).
    PodSysctls {
        /// Profile file.
        profile: PathBuf,
    },
    /// Check the securityContext.sysctls of every pod spec in manifests (Pod, Deployment,
    /// StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, multi-document files) for --k8s X.Y and
    /// --kernel X.Y before `kubectl apply`; exit 3 on errors.
    Check {
        /// Manifest files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The kubelet's allowedUnsafeSysctls on the nodes (names or prefixes like net.ipv4.*).
        #[arg(long, value_name = "NAME,…", value_delimiter = ',', value_parser = UnsafePattern::parse)]
        allowed_unsafe: Vec<UnsafePattern>,
    },
}
