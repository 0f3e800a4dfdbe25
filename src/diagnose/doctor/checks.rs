//! The checks of `doctor`, one function per failure mode: evidence in, verdict out.
//!
//! Each names the fix, the keys and the shipped profiles; none reads anything (see `Inputs`).

use super::{Check, Inputs, Thresholds, Verdict};
use crate::kernel::procnet::TcpState;

fn counter_evidence(inputs: &Inputs, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter_map(|n| inputs.counters.get(n).map(|v| format!("{n} = {v}")))
        .collect()
}

pub(super) fn conntrack(inputs: &Inputs, t: &Thresholds) -> Check {
    let check = Check::new(
        "conntrack-full",
        "raise net.netfilter.nf_conntrack_max on the host (and the hash size, nf_conntrack_buckets, to max/4 or more), shorten nf_conntrack_tcp_timeout_time_wait/established if entries linger, or stop tracking traffic that needs no NAT (notrack); none of the shipped profiles sets it: conntrack sizing is host-wide and read-only in a child namespace",
        &[
            "net.netfilter.nf_conntrack_max",
            "net.netfilter.nf_conntrack_buckets",
            "net.netfilter.nf_conntrack_tcp_timeout_established",
        ],
    );
    let (count, max) = (
        inputs.int("net.netfilter.nf_conntrack_count"),
        inputs.int("net.netfilter.nf_conntrack_max"),
    );
    let Some(stats) = &inputs.conntrack else {
        if count.is_none() {
            return check.verdict(
                Verdict::Unavailable,
                "conntrack is not loaded in this namespace",
            );
        }
        return fill_only(check, inputs, count, max, t);
    };
    let dropped = ["drop", "early_drop", "insert_failed"]
        .iter()
        .map(|c| stats.value(c))
        .sum::<u64>();
    let mut evidence: Vec<String> = ["drop", "early_drop", "insert_failed"]
        .iter()
        .map(|c| format!("nf_conntrack stat {c} = {}", stats.value(c)))
        .collect();
    evidence.push(inputs.shown("net.netfilter.nf_conntrack_count"));
    evidence.push(inputs.shown("net.netfilter.nf_conntrack_max"));
    if dropped >= t.min_count {
        let mut c = check.verdict(
            Verdict::Error,
            format!("conntrack dropped packets {dropped} time(s): \"nf_conntrack: table full, dropping packet\""),
        );
        c.evidence = evidence;
        return c;
    }
    let mut c = fill_only(check, inputs, count, max, t);
    c.evidence = evidence;
    c
}

fn fill_only(
    check: Check,
    inputs: &Inputs,
    count: Option<i128>,
    max: Option<i128>,
    t: &Thresholds,
) -> Check {
    let mut check = check;
    check.evidence = vec![
        inputs.shown("net.netfilter.nf_conntrack_count"),
        inputs.shown("net.netfilter.nf_conntrack_max"),
    ];
    match (count, max) {
        (Some(count), Some(max))
            if max > 0 && count * 100 >= max * i128::from(t.conntrack_full_pct) =>
        {
            let pct = count * 100 / max;
            check.verdict(
                Verdict::Warning,
                format!("the conntrack table is {pct}% full ({count} of {max}): new flows will be dropped when it fills"),
            )
        }
        _ => check,
    }
}

pub(super) fn time_wait_overflow(inputs: &Inputs, t: &Thresholds) -> Check {
    let mut check = Check::new(
        "time-wait-overflow",
        "TIME_WAIT sockets beyond tcp_max_tw_buckets are destroyed early (\"TCP: time wait bucket table overflow\"): raise net.ipv4.tcp_max_tw_buckets (the default scales with memory; base.yaml leaves it there on purpose), and on clients let connect() reuse TIME_WAIT with tcp_tw_reuse; never tcp_tw_recycle",
        &["net.ipv4.tcp_max_tw_buckets", "net.ipv4.tcp_tw_reuse"],
    )
    .profiles(&["datacenter-client.yaml"]);
    let overflows = inputs.counters.value("TcpExt.TCPTimeWaitOverflow");
    check.evidence = counter_evidence(inputs, &["TcpExt.TCPTimeWaitOverflow"]);
    check
        .evidence
        .push(inputs.shown("net.ipv4.tcp_max_tw_buckets"));
    check.evidence.push(format!(
        "sockets in TIME_WAIT now = {}",
        inputs.count(TcpState::TimeWait)
    ));
    if overflows >= t.min_count {
        return check.verdict(
            Verdict::Warning,
            format!("the TIME_WAIT table overflowed {overflows} time(s)"),
        );
    }
    check
}

pub(super) fn paws(inputs: &Inputs, t: &Thresholds) -> Check {
    const COUNTERS: &[&str] = &[
        "TcpExt.PAWSPassive",
        "TcpExt.PAWSActive",
        "TcpExt.PAWSEstab",
        "TcpExt.PAWSTimewait",
    ];
    let mut check = Check::new(
        "paws-rejects",
        "segments were dropped for an old TCP timestamp (PAWS): typical when clients behind one NAT address have different clocks and the server recycles TIME_WAIT by timestamp. Never set tcp_tw_recycle (removed in 4.12; it caused exactly this), keep tcp_timestamps = 1 (turning timestamps off costs PAWS protection and RTT measurement)",
        &["net.ipv4.tcp_tw_recycle", "net.ipv4.tcp_timestamps"],
    )
    .profiles(&["nat-facing-server.yaml"]);
    let rejects: u64 = COUNTERS.iter().map(|c| inputs.counters.value(c)).sum();
    check.evidence = counter_evidence(inputs, COUNTERS);
    check.evidence.push(inputs.shown("net.ipv4.tcp_timestamps"));
    if inputs.sysctls.contains_key("net.ipv4.tcp_tw_recycle") {
        check.evidence.push(inputs.shown("net.ipv4.tcp_tw_recycle"));
    }
    if inputs.int("net.ipv4.tcp_tw_recycle") == Some(1) {
        return check.verdict(
            Verdict::Error,
            format!("tcp_tw_recycle is on: clients behind NAT lose SYNs ({rejects} PAWS reject(s) so far)"),
        );
    }
    if rejects >= t.min_count {
        return check.verdict(
            Verdict::Warning,
            format!("{rejects} segment(s) rejected by the timestamp check (PAWS)"),
        );
    }
    check
}

pub(super) fn listen_overflow(inputs: &Inputs, t: &Thresholds) -> Check {
    let mut check = Check::new(
        "listen-overflow",
        "a listener's accept queue was full, so completed connections were dropped: accept faster, raise the application's listen() backlog and net.core.somaxconn (it caps the backlog), and net.ipv4.tcp_max_syn_backlog with it",
        &["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog"],
    )
    .profiles(&["nat-facing-server.yaml", "lvs-dr-backend.yaml"]);
    let overflows = inputs.counters.value("TcpExt.ListenOverflows");
    check.evidence = counter_evidence(inputs, &["TcpExt.ListenOverflows", "TcpExt.ListenDrops"]);
    check.evidence.push(inputs.shown("net.core.somaxconn"));
    for (local, waiting) in inputs.sockets.backlogged_listeners() {
        check.evidence.push(format!(
            "listener {local} has {waiting} connection(s) waiting to be accepted"
        ));
    }
    if overflows >= t.min_count {
        return check.verdict(
            Verdict::Warning,
            format!("accept queues overflowed {overflows} time(s)"),
        );
    }
    check
}

pub(super) fn syn_queue(inputs: &Inputs, t: &Thresholds) -> Check {
    let mut check = Check::new(
        "syn-queue-full",
        "the SYN queue was full: keep SYN cookies on (tcp_syncookies = 1, base.yaml) so a full queue answers with cookies instead of dropping, and raise net.ipv4.tcp_max_syn_backlog together with the listen backlog and somaxconn",
        &[
            "net.ipv4.tcp_syncookies",
            "net.ipv4.tcp_max_syn_backlog",
            "net.core.somaxconn",
        ],
    )
    .profiles(&["base.yaml", "nat-facing-server.yaml", "lvs-dr-backend.yaml"]);
    let drops = inputs.counters.value("TcpExt.TCPReqQFullDrop");
    let cookies = inputs.counters.value("TcpExt.TCPReqQFullDoCookies");
    check.evidence = counter_evidence(
        inputs,
        &[
            "TcpExt.TCPReqQFullDrop",
            "TcpExt.TCPReqQFullDoCookies",
            "TcpExt.SyncookiesSent",
        ],
    );
    check.evidence.push(inputs.shown("net.ipv4.tcp_syncookies"));
    check
        .evidence
        .push(inputs.shown("net.ipv4.tcp_max_syn_backlog"));
    if drops >= t.min_count {
        return check.verdict(
            Verdict::Warning,
            format!("{drops} SYN(s) dropped because the SYN queue was full"),
        );
    }
    if cookies >= t.min_count {
        return check.verdict(
            Verdict::Info,
            format!(
                "the SYN queue filled {cookies} time(s); SYN cookies answered instead of dropping"
            ),
        );
    }
    check
}

pub(super) fn ephemeral_ports(inputs: &Inputs, t: &Thresholds) -> Check {
    let mut check = Check::new(
        "ephemeral-ports",
        "connections toward one destination (address and port) each hold a local port until TIME_WAIT ends: widen net.ipv4.ip_local_port_range, let connect() reuse TIME_WAIT (tcp_tw_reuse = 1), or keep connections alive and pooled instead of opening one per request",
        &["net.ipv4.ip_local_port_range", "net.ipv4.tcp_tw_reuse"],
    )
    .profiles(&["datacenter-client.yaml", "k8s-pod.yaml"]);
    let range = inputs.sysctls.get("net.ipv4.ip_local_port_range");
    let (Some(low), Some(high)) = (
        range.and_then(|r| r.int_at(0)),
        range.and_then(|r| r.int_at(1)),
    ) else {
        return check.verdict(
            Verdict::Unavailable,
            "net.ipv4.ip_local_port_range is not readable",
        );
    };
    let size = (high - low + 1).max(1) as usize;
    // TIME_WAIT per destination, for local ports inside the range (counted by the tally).
    let mut worst: Vec<_> = inputs
        .sockets
        .time_wait_by_destination()
        .iter()
        .map(|(key, n)| (*key, *n))
        .collect();
    worst.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    check.evidence.push(format!(
        "{} = {low} {high} ({size} ports)",
        "net.ipv4.ip_local_port_range"
    ));
    check.evidence.push(inputs.shown("net.ipv4.tcp_tw_reuse"));
    for ((_, dest), n) in worst.iter().take(3) {
        check.evidence.push(format!(
            "{n} TIME_WAIT socket(s) toward {dest} ({}% of the range)",
            n * 100 / size
        ));
    }
    match worst.first() {
        Some(((_, dest), n)) if n * 100 >= size * t.port_use_pct as usize => check.verdict(
            Verdict::Warning,
            format!("{n} of {size} ephemeral ports toward {dest} are held in TIME_WAIT"),
        ),
        _ => check,
    }
}

pub(super) fn close_wait(inputs: &Inputs, t: &Thresholds) -> Check {
    let mut check = Check::new(
        "close-wait",
        "CLOSE_WAIT means the peer closed and this host's application never called close(): it is an application bug (a leaked socket or a stuck worker), and no sysctl fixes it; find the process with `ss -tanp state close-wait`",
        &[],
    );
    let n = inputs.count(TcpState::CloseWait);
    check.evidence.push(format!(
        "sockets in CLOSE_WAIT = {n} (threshold {})",
        t.close_wait
    ));
    let mut top: Vec<_> = inputs.sockets.close_wait_by_local().iter().collect();
    top.sort_by_key(|entry| std::cmp::Reverse(*entry.1));
    for (local, count) in top.iter().take(3) {
        check.evidence.push(format!("{count} on local {local}"));
    }
    if n >= t.close_wait {
        return check.verdict(
            Verdict::Warning,
            format!("{n} socket(s) stuck in CLOSE_WAIT: the application is not closing them"),
        );
    }
    check
}

pub(super) fn fin_wait2(inputs: &Inputs, t: &Thresholds) -> Check {
    let mut check = Check::new(
        "fin-wait2",
        "this host closed and the peer has not: orphaned FIN_WAIT2 sockets live for net.ipv4.tcp_fin_timeout; lower it (base.yaml sets 30) so they are reclaimed sooner. Sockets the application still holds half-closed (shutdown) wait for the peer regardless",
        &["net.ipv4.tcp_fin_timeout"],
    )
    .profiles(&["base.yaml", "datacenter-client.yaml", "k8s-pod.yaml"]);
    let n = inputs.count(TcpState::FinWait2);
    check.evidence.push(format!(
        "sockets in FIN_WAIT2 = {n} (threshold {})",
        t.fin_wait2
    ));
    check
        .evidence
        .push(inputs.shown("net.ipv4.tcp_fin_timeout"));
    if n >= t.fin_wait2 {
        return check.verdict(
            Verdict::Warning,
            format!("{n} socket(s) in FIN_WAIT2 waiting for the peer to close"),
        );
    }
    check
}
