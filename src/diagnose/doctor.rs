//! `doctor`: the seeds' failure modes, recognised from the kernel's counters and socket tables.
//!
//! Each check turns evidence (TcpExt/snmp counters, conntrack statistics and fill, TCP socket
//! states) into a verdict with the fix, the keys involved and the shipped profile that addresses
//! it. Counters are cumulative since boot (or since the network namespace was created), so a
//! counter above `min_count` is evidence that it happened, not that it is happening now. All of
//! these files are per network namespace, so `--netns` diagnoses a container. [`Inputs::read`]
//! reads; [`diagnose`] is pure. Printing is the command's job.

use std::collections::BTreeMap;
use std::path::Path;

use crate::kernel::SysctlTree;
use crate::kernel::procnet::{ConntrackStats, Counters, TcpState};
use crate::kernel::sockets::{self, Origin, SocketTally};
use crate::profile::key::SysctlKey;

mod checks;
use crate::profile::value::Value;

/// The sysctls the checks quote as evidence.
pub const WATCHED_KEYS: &[&str] = &[
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_tw_recycle",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_fin_timeout",
    "net.netfilter.nf_conntrack_count",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_conntrack_buckets",
];

/// Everything the checks look at.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// `netstat` and `snmp` counters.
    pub counters: Counters,
    /// `stat/nf_conntrack`, when conntrack is loaded.
    pub conntrack: Option<ConntrackStats>,
    /// The TCP sockets (netlink sock_diag, or the `tcp` and `tcp6` tables), counted.
    pub sockets: SocketTally,
    /// Where the socket counts came from.
    pub socket_origin: Origin,
    /// [`WATCHED_KEYS`] that could be read.
    pub sysctls: BTreeMap<String, Value>,
}

impl Inputs {
    /// Reads the tables under `proc_net` (normally /proc/net, which shows the caller's network
    /// namespace; its sockets then come through netlink, see `sockets`) and the watched keys
    /// from `tree`. Missing files are simply absent evidence.
    pub fn read(proc_net: &Path, tree: &SysctlTree) -> Self {
        let text = |name: &str| {
            let policy = crate::files::Policy::input(16 << 20);
            let bytes = crate::files::read(&proc_net.join(name), policy).ok()?;
            String::from_utf8(bytes).ok()
        };
        let mut counters = Counters::default();
        for name in ["netstat", "snmp"] {
            counters.add_text(&text(name).unwrap_or_default());
        }
        let sysctls: BTreeMap<String, Value> = WATCHED_KEYS
            .iter()
            .filter_map(|k| {
                let key = SysctlKey::parse(k).ok()?;
                Some(((*k).to_owned(), tree.read(&key).ok()?))
            })
            .collect();
        let census = sockets::census(proc_net, ephemeral_range(&sysctls));
        Self {
            counters,
            conntrack: text("stat/nf_conntrack").and_then(|t| ConntrackStats::parse(&t)),
            sockets: census.tally.unwrap_or_default(),
            socket_origin: census.origin,
            sysctls,
        }
    }

    fn int(&self, key: &str) -> Option<i128> {
        self.sysctls.get(key).and_then(Value::as_int)
    }

    fn shown(&self, key: &str) -> String {
        let value = self.sysctls.get(key).map(Value::to_string);
        format!("{key} = {}", value.as_deref().unwrap_or("(absent)"))
    }

    fn count(&self, state: TcpState) -> usize {
        self.sockets.count(state)
    }
}

/// `net.ipv4.ip_local_port_range` as ports, when readable (low > high: an empty range).
pub fn ephemeral_range(sysctls: &BTreeMap<String, Value>) -> Option<(u16, u16)> {
    let range = sysctls.get("net.ipv4.ip_local_port_range")?;
    let port = |i| u16::try_from(range.int_at(i)?).ok();
    Some((port(0)?, port(1)?))
}

/// When a check reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Thresholds {
    /// Conntrack fill (count / max) that counts as near full, in percent.
    pub conntrack_full_pct: u32,
    /// TIME_WAIT sockets toward one destination, as a percentage of the ephemeral port range.
    pub port_use_pct: u32,
    /// CLOSE_WAIT sockets that count as many.
    pub close_wait: usize,
    /// FIN_WAIT2 sockets that count as many.
    pub fin_wait2: usize,
    /// A cumulative counter at or above this is reported.
    pub min_count: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            conntrack_full_pct: 90,
            port_use_pct: 50,
            close_wait: 32,
            fin_wait2: 256,
            min_count: 1,
        }
    }
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing to report.
    Ok,
    /// The evidence this check needs is not available here.
    Unavailable,
    /// Worth knowing; not necessarily a problem.
    Info,
    /// The failure mode happened.
    Warning,
    /// The failure mode is hurting traffic now.
    Error,
}

/// One check and its outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// Stable id (`listen-overflow`).
    pub id: &'static str,
    /// The verdict.
    pub verdict: Verdict,
    /// One line: what happened.
    pub summary: String,
    /// The numbers behind it.
    pub evidence: Vec<String>,
    /// What to do.
    pub fix: &'static str,
    /// The keys that address it (empty: no sysctl does).
    pub keys: &'static [&'static str],
    /// Shipped profiles that set those keys.
    pub profiles: &'static [&'static str],
}

impl Check {
    fn new(id: &'static str, fix: &'static str, keys: &'static [&'static str]) -> Self {
        Self {
            id,
            verdict: Verdict::Ok,
            summary: String::new(),
            evidence: Vec::new(),
            fix,
            keys,
            profiles: &[],
        }
    }

    fn profiles(mut self, profiles: &'static [&'static str]) -> Self {
        self.profiles = profiles;
        self
    }

    fn verdict(mut self, verdict: Verdict, summary: impl Into<String>) -> Self {
        self.verdict = verdict;
        self.summary = summary.into();
        self
    }

    /// Whether this check found something.
    pub fn is_finding(&self) -> bool {
        self.verdict >= Verdict::Info
    }
}

/// The result of all checks plus the socket-state census.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Diagnosis {
    /// Every check, in a fixed order.
    pub checks: Vec<Check>,
    /// TCP sockets per state.
    pub states: BTreeMap<TcpState, usize>,
    /// Where the socket counts came from (netlink or the /proc tables), and what failed.
    pub sockets_from: Origin,
    /// The thresholds used.
    pub thresholds: Thresholds,
}

impl Diagnosis {
    /// The checks that found something.
    pub fn findings(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.is_finding())
    }
}

/// Runs every check.
pub fn diagnose(inputs: &Inputs, t: &Thresholds) -> Diagnosis {
    Diagnosis {
        checks: vec![
            checks::conntrack(inputs, t),
            checks::time_wait_overflow(inputs, t),
            checks::paws(inputs, t),
            checks::listen_overflow(inputs, t),
            checks::syn_queue(inputs, t),
            checks::ephemeral_ports(inputs, t),
            checks::close_wait(inputs, t),
            checks::fin_wait2(inputs, t),
        ],
        states: inputs.sockets.states(),
        sockets_from: inputs.socket_origin.clone(),
        thresholds: t.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::procnet::{Endpoint, Socket};

    fn sysctls(pairs: &[(&str, &str)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from_text(v)))
            .collect()
    }

    fn socket(local: &str, remote: &str, state: TcpState) -> Socket {
        let ep = |s: &str| {
            let addr: std::net::SocketAddr = s.parse().unwrap();
            Endpoint {
                ip: addr.ip(),
                port: addr.port(),
            }
        };
        Socket {
            local: ep(local),
            remote: ep(remote),
            state,
            rx_queue: 0,
        }
    }

    fn verdicts(d: &Diagnosis) -> Vec<(&'static str, Verdict)> {
        d.checks.iter().map(|c| (c.id, c.verdict)).collect()
    }

    #[test]
    fn a_quiet_host_has_no_findings() {
        let inputs = Inputs {
            sysctls: sysctls(&[("net.ipv4.ip_local_port_range", "32768 60999")]),
            ..Inputs::default()
        };
        let d = diagnose(&inputs, &Thresholds::default());
        assert_eq!(d.findings().count(), 0, "{:?}", verdicts(&d));
        assert_eq!(d.checks[0].verdict, Verdict::Unavailable);
    }

    #[test]
    fn each_failure_mode_is_recognised_from_its_evidence() {
        let mut counters = Counters::default();
        counters.add_text(
            "TcpExt: TCPTimeWaitOverflow PAWSEstab ListenOverflows ListenDrops TCPReqQFullDrop\nTcpExt: 4 2 7 7 3\n",
        );
        let sysctls = sysctls(&[
            ("net.ipv4.ip_local_port_range", "40000 40099"),
            ("net.netfilter.nf_conntrack_count", "16"),
            ("net.netfilter.nf_conntrack_max", "16"),
        ]);
        let mut sockets = SocketTally::new(ephemeral_range(&sysctls));
        for port in 40000..40060 {
            sockets.add(&socket(
                &format!("127.0.0.1:{port}"),
                "127.0.0.1:9000",
                TcpState::TimeWait,
            ));
        }
        for port in 50000..50040 {
            sockets.add(&socket(
                "127.0.0.1:9001",
                &format!("127.0.0.1:{port}"),
                TcpState::CloseWait,
            ));
            sockets.add(&socket(
                &format!("127.0.0.1:{port}"),
                "127.0.0.1:9002",
                TcpState::FinWait2,
            ));
        }
        let stats = "entries drop early_drop insert_failed\n00000010 00000001 00000000 00000000\n00000010 00000002 00000000 00000000\n";
        let inputs = Inputs {
            counters,
            conntrack: ConntrackStats::parse(stats),
            sockets,
            socket_origin: Origin::default(),
            sysctls,
        };
        let t = Thresholds {
            close_wait: 40,
            fin_wait2: 40,
            ..Thresholds::default()
        };
        let d = diagnose(&inputs, &t);
        assert_eq!(
            verdicts(&d),
            [
                ("conntrack-full", Verdict::Error),
                ("time-wait-overflow", Verdict::Warning),
                ("paws-rejects", Verdict::Warning),
                ("listen-overflow", Verdict::Warning),
                ("syn-queue-full", Verdict::Warning),
                ("ephemeral-ports", Verdict::Warning),
                ("close-wait", Verdict::Warning),
                ("fin-wait2", Verdict::Warning),
            ]
        );
        let ports = &d.checks[5];
        assert!(
            ports
                .summary
                .contains("60 of 100 ephemeral ports toward 127.0.0.1:9000"),
            "{}",
            ports.summary
        );
        assert!(d.checks[6].fix.contains("no sysctl fixes it"));
        assert!(d.checks[6].keys.is_empty());
        assert!(d.checks[0].summary.contains("table full, dropping packet"));
        assert_eq!(d.states[&TcpState::TimeWait], 60);
    }

    #[test]
    fn thresholds_decide_and_recycle_is_an_error() {
        let inputs = Inputs {
            sysctls: sysctls(&[
                ("net.ipv4.tcp_tw_recycle", "1"),
                ("net.netfilter.nf_conntrack_count", "91"),
                ("net.netfilter.nf_conntrack_max", "100"),
                ("net.ipv4.ip_local_port_range", "1 0"),
            ]),
            ..Inputs::default()
        };
        let d = diagnose(&inputs, &Thresholds::default());
        assert_eq!(d.checks[0].verdict, Verdict::Warning);
        assert!(
            d.checks[0].summary.contains("91% full"),
            "{}",
            d.checks[0].summary
        );
        assert_eq!(d.checks[2].verdict, Verdict::Error);
        let relaxed = Thresholds {
            conntrack_full_pct: 95,
            ..Thresholds::default()
        };
        assert_eq!(diagnose(&inputs, &relaxed).checks[0].verdict, Verdict::Ok);
    }
}
