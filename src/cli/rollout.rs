//! Flags and commands for safe rollouts: health gates, watched and confirmed applies, stages,
//! rollout plans and Kubernetes pod sysctls.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use crate::canary::health::Gate;
use crate::canary::sample::PROC_NET;

fn duration(raw: &str) -> Result<Duration, String> {
    crate::profile::section::parse_duration(raw)
}

// Health gate flags shared by `apply --watch` and `health` (no doc comment: see `SafeApply`).
#[allow(missing_docs)]
#[derive(Debug, Clone, Args)]
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
}
