//! Sampling the kernel counters health gates watch.
//!
//! A [`Sample`] is a flat map from counter name to value, read from the files of one network
//! namespace's `/proc/net` (whose root is injected: a fake directory in tests) and from three
//! sysctls read through the [`SysctlTree`]:
//!
//! | counters | source |
//! |---|---|
//! | `TcpExt.*`, `IpExt.*`, `MPTcpExt.*`, … | `/proc/net/netstat` (header/value line pairs) |
//! | `Tcp.*`, `Ip.*`, `Udp.*`, `Icmp.*`, … | `/proc/net/snmp` (same layout) |
//! | `nf_conntrack.*` | `/proc/net/stat/nf_conntrack`: one hex row per CPU, summed (`entries` is global, not summed) |
//! | `conntrack.count`, `conntrack.max`, `conntrack.fill` | `net.netfilter.nf_conntrack_{count,max}`; fill = count / max |
//! | `sockets.<STATE>` | TCP sockets per state: netlink sock_diag, or `/proc/net/tcp` and `tcp6` (see `sockets`) |
//! | `ports.ephemeral_used`, `ports.ephemeral_total`, `ports.ephemeral_use` | distinct local ports inside `net.ipv4.ip_local_port_range` held by non-listening TCP sockets; use = used / total |
//!
//! A source that is absent (conntrack not loaded, an older kernel) is listed in
//! [`Sample::unavailable`] and its counters are simply missing: gates report them, they are not
//! an error. The file formats are parsed by `procnet`; this module reads the files, derives the
//! ratios and names the counters. It never judges (that is `health`) and never prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::env::Env;
use crate::kernel::SysctlTree;
use crate::kernel::procnet::{ConntrackStats, Counters, TcpState};
use crate::kernel::sockets;
use crate::profile::health::TCP_STATES;
use crate::profile::key::SysctlKey;

pub use crate::kernel::procnet::PROC_NET;

/// Where counters are read from.
pub struct Sources<'a> {
    /// The `/proc/net` directory (or a fake one).
    pub proc_net: &'a Path,
    /// The sysctl tree (conntrack count/max, the ephemeral port range).
    pub tree: &'a SysctlTree,
    /// The clock samples are stamped with.
    pub env: &'a dyn Env,
}

/// Counter values at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was taken (monotonic).
    pub taken: Instant,
    /// Counter name → value.
    pub values: BTreeMap<String, f64>,
    /// Sources that could not be read, with why.
    pub unavailable: Vec<String>,
}

impl Sample {
    /// A counter's value, if this kernel has it.
    pub fn get(&self, counter: &str) -> Option<f64> {
        self.values.get(counter).copied()
    }

    fn missing(&mut self, what: impl Into<String>) {
        self.unavailable.push(what.into());
    }
}

/// Reads every source once.
pub fn sample(src: &Sources) -> Sample {
    sample_with(src, true)
}

/// Reads every source once; the socket census (the costly part on a busy host) only when
/// `sockets` is true.
pub fn sample_with(src: &Sources, sockets: bool) -> Sample {
    let mut s = Sample {
        taken: src.env.monotonic(),
        values: BTreeMap::new(),
        unavailable: Vec::new(),
    };
    let mut mib = Counters::default();
    for file in ["netstat", "snmp"] {
        match read(src.proc_net, file) {
            Ok(text) => mib.add_text(&text),
            Err(why) => s.missing(why),
        }
    }
    s.values
        .extend(mib.0.into_iter().map(|(name, v)| (name, v as f64)));
    match read(src.proc_net, "stat/nf_conntrack") {
        Ok(text) => {
            let stats = ConntrackStats::parse(&text).unwrap_or_default();
            s.values.extend(
                stats
                    .totals
                    .into_iter()
                    .map(|(name, v)| (format!("nf_conntrack.{name}"), v as f64)),
            );
        }
        Err(why) => s.missing(why),
    }
    conntrack_fill(src.tree, &mut s);
    if sockets {
        sockets_and_ports(src, &mut s);
    }
    s
}

fn read(dir: &Path, name: &str) -> Result<String, String> {
    let path: PathBuf = dir.join(name);
    let bytes = crate::files::read(&path, crate::files::Policy::input(16 << 20))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn sysctl_number(tree: &SysctlTree, key: &str) -> Option<Vec<f64>> {
    let key = SysctlKey::parse(key).ok()?;
    let value = tree.read(&key).ok()?;
    value.tokens().iter().map(|t| t.parse().ok()).collect()
}

fn conntrack_fill(tree: &SysctlTree, s: &mut Sample) {
    let count = sysctl_number(tree, "net.netfilter.nf_conntrack_count");
    let max = sysctl_number(tree, "net.netfilter.nf_conntrack_max");
    match (count.as_deref(), max.as_deref()) {
        (Some([count]), Some([max])) => {
            s.values.insert("conntrack.count".into(), *count);
            s.values.insert("conntrack.max".into(), *max);
            if *max > 0.0 {
                s.values.insert("conntrack.fill".into(), count / max);
            }
        }
        _ => {
            s.missing("net.netfilter.nf_conntrack_count/max: not readable (conntrack not loaded?)")
        }
    }
}

fn sockets_and_ports(src: &Sources, s: &mut Sample) {
    let range = match sysctl_number(src.tree, "net.ipv4.ip_local_port_range").as_deref() {
        Some([low, high]) if high >= low => Some((*low as u16, *high as u16)),
        _ => None,
    };
    let census = sockets::census(src.proc_net, range);
    s.unavailable.extend(census.origin.unavailable);
    let Some(tally) = census.tally else { return };
    for (state, name) in TcpState::ALL.iter().zip(TCP_STATES) {
        s.values
            .insert(format!("sockets.{name}"), tally.count(*state) as f64);
    }
    match range {
        Some((low, high)) => {
            let used = tally.ports_in_use(low, high);
            let total = f64::from(high - low) + 1.0;
            s.values.insert("ports.ephemeral_used".into(), used as f64);
            s.values.insert("ports.ephemeral_total".into(), total);
            s.values
                .insert("ports.ephemeral_use".into(), used as f64 / total);
        }
        _ => s.missing("net.ipv4.ip_local_port_range: not readable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NETSTAT: &str = "TcpExt: SyncookiesSent ListenOverflows PAWSEstab\n\
                           TcpExt: 0 17 3\n\
                           IpExt: InNoRoutes\n\
                           IpExt: 5\n";
    const SNMP: &str = "Tcp: RtoAlgorithm MaxConn AttemptFails\nTcp: 1 -1 42\n";
    const CONNTRACK: &str = "entries  clashres found insert_failed drop early_drop\n\
                             0000000a  00000000 00000001 00000002 0000000f 00000000\n\
                             0000000a  00000000 00000001 00000000 00000001 00000003\n";
    const TCP: &str = "  sl  local_address rem_address   st tx_queue\n\
        0: 0100007F:1F90 00000000:0000 0A 00000000:00000000\n\
        1: 0100007F:A000 0100007F:1F90 01 00000000:00000000\n\
        2: 0100007F:A000 0100007F:1F91 06 00000000:00000000\n\
        3: 0100007F:A001 0100007F:1F90 08 00000000:00000000\n";

    #[test]
    fn a_fake_proc_net_is_sampled_and_missing_sources_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("net");
        std::fs::create_dir_all(net.join("stat")).unwrap();
        std::fs::write(net.join("netstat"), NETSTAT).unwrap();
        std::fs::write(net.join("snmp"), SNMP).unwrap();
        std::fs::write(net.join("tcp"), TCP).unwrap();
        let sys = dir.path().join("sys");
        std::fs::create_dir_all(sys.join("net/ipv4")).unwrap();
        // 0xA000 = 40960 and 0xA001 lie inside; 8080 (the listener) does not.
        std::fs::write(sys.join("net/ipv4/ip_local_port_range"), "40000\t40999\n").unwrap();
        let tree = SysctlTree::open(&sys).unwrap();
        let s = sample(&Sources {
            proc_net: &net,
            tree: &tree,
            env: &crate::env::SYSTEM,
        });
        assert_eq!(s.get("TcpExt.ListenOverflows"), Some(17.0));
        assert_eq!(s.get("sockets.TIME_WAIT"), Some(1.0));
        assert_eq!(s.get("sockets.CLOSE_WAIT"), Some(1.0));
        assert_eq!(s.get("sockets.LISTEN"), Some(1.0));
        assert_eq!(s.get("ports.ephemeral_used"), Some(2.0));
        assert_eq!(s.get("ports.ephemeral_total"), Some(1000.0));
        assert_eq!(s.get("ports.ephemeral_use"), Some(0.002));
        assert_eq!(s.get("nf_conntrack.drop"), None);
        assert_eq!(s.get("conntrack.fill"), None);
        let missing = s.unavailable.join("\n");
        assert!(missing.contains("stat/nf_conntrack"), "{missing}");
        assert!(missing.contains("tcp6"), "{missing}");
        assert!(missing.contains("nf_conntrack_count"), "{missing}");

        std::fs::write(net.join("stat/nf_conntrack"), CONNTRACK).unwrap();
        std::fs::create_dir_all(sys.join("net/netfilter")).unwrap();
        std::fs::write(sys.join("net/netfilter/nf_conntrack_count"), "300\n").unwrap();
        std::fs::write(sys.join("net/netfilter/nf_conntrack_max"), "1000\n").unwrap();
        let s = sample(&Sources {
            proc_net: &net,
            tree: &tree,
            env: &crate::env::SYSTEM,
        });
        assert_eq!(s.get("nf_conntrack.drop"), Some(16.0), "summed over CPUs");
        assert_eq!(s.get("nf_conntrack.early_drop"), Some(3.0));
        assert_eq!(
            s.get("nf_conntrack.entries"),
            Some(10.0),
            "global, not summed"
        );
        assert_eq!(s.get("conntrack.fill"), Some(0.3));
    }
}
