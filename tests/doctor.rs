//! `sysprof doctor` against conditions produced for real: each test creates a throwaway network
//! namespace, runs tests/sockets.py inside it to produce one failure mode with real sockets on
//! loopback (or a veth inside the namespace), and checks that doctor names it, with evidence,
//! keys and profiles, and stays quiet about the others. Conntrack exhaustion cannot be produced
//! here (nf_conntrack_max is host-wide and read-only in a child namespace); it is covered with
//! recorded tables in src/doctor.rs and tests/doctor.rs::recorded_tables_via_proc_net.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::{Netns, Sandbox};

/// A socket program holding its condition until dropped.
struct Condition {
    child: Child,
}

impl Condition {
    fn start(ns: &Netns, mode: &str, args: &[&str]) -> Self {
        let script = common::repo().join("tests/sockets.py");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "python3"])
            .arg(script)
            .arg(mode)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3 in the namespace");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "tests/sockets.py {mode} did not get ready"
        );
        Self { child }
    }
}

impl Drop for Condition {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn sh(ns: &Netns, script: &str) {
    let ok = Command::new("ip")
        .args(["netns", "exec", &ns.name, "sh", "-ec", script])
        .status()
        .unwrap()
        .success();
    assert!(ok, "{script}");
}

/// Runs doctor in the namespace; returns check id → check JSON.
fn doctor(ns: &Netns, args: &[&str]) -> serde_json::Map<String, serde_json::Value> {
    let sb = Sandbox::netns(ns);
    let mut all = vec!["doctor", "--format", "json"];
    all.extend(args);
    let json = sb.run(&all).expect(0).json();
    json["diagnosis"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_owned(), c.clone()))
        .collect()
}

/// Asserts exactly `expected` (id, verdict) are findings; everything else is ok or n/a.
fn assert_findings(checks: &serde_json::Map<String, serde_json::Value>, expected: &[(&str, &str)]) {
    for (id, check) in checks {
        let verdict = check["verdict"].as_str().unwrap();
        match expected.iter().find(|(e, _)| e == id) {
            Some((_, want)) => assert_eq!(verdict, *want, "{id}: {check:#}"),
            None => assert!(
                verdict == "ok" || verdict == "unavailable",
                "{id} should be quiet: {check:#}"
            ),
        }
    }
}

fn evidence(check: &serde_json::Value) -> String {
    check["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_fresh_namespace_is_healthy_and_reads_its_own_tables() {
    let Some(ns) = Netns::create() else { return };
    let checks = doctor(&ns, &[]);
    assert_eq!(checks.len(), 8);
    assert_findings(&checks, &[]);
    let conntrack = evidence(&checks["conntrack-full"]);
    assert!(
        checks["conntrack-full"]["verdict"] == "unavailable"
            || conntrack.contains("net.netfilter.nf_conntrack_count = 0"),
        "{conntrack}"
    );
    let human = Sandbox::netns(&ns).run(&["doctor"]).expect(0);
    assert!(
        human.stdout.contains("listen-overflow     ok"),
        "{}",
        human.stdout
    );
}

#[test]
fn accept_queue_overflow_from_a_listener_that_never_accepts() {
    let Some(ns) = Netns::create() else { return };
    let _held = Condition::start(&ns, "listen-overflow", &["20"]);
    let checks = doctor(&ns, &[]);
    assert_findings(&checks, &[("listen-overflow", "warning")]);
    let check = &checks["listen-overflow"];
    let ev = evidence(check);
    assert!(ev.contains("TcpExt.ListenOverflows = "), "{ev}");
    assert!(
        ev.contains("listener 127.0.0.1:9000 has 2 connection(s) waiting"),
        "{ev}"
    );
    assert!(ev.contains("net.core.somaxconn = "), "{ev}");
    assert_eq!(check["keys"][0], "net.core.somaxconn");
    assert_eq!(check["profiles"][0], "nat-facing-server.yaml");

    let human = Sandbox::netns(&ns).run(&["doctor"]).expect(0);
    for expected in [
        "listen-overflow     warning  accept queues overflowed",
        "= keys: net.core.somaxconn, net.ipv4.tcp_max_syn_backlog",
        "= profiles: profiles/nat-facing-server.yaml, profiles/lvs-dr-backend.yaml",
    ] {
        assert!(
            human.stdout.contains(expected),
            "{expected}\n{}",
            human.stdout
        );
    }
}

#[test]
fn ephemeral_ports_held_in_time_wait_toward_one_destination() {
    let Some(ns) = Netns::create() else { return };
    ns.write("net.ipv4.ip_local_port_range", "40000 40099");
    // On loopback connect() takes back a TIME_WAIT older than a second (tcp_tw_reuse = 2, the
    // default): on a loaded machine the 80 connections can take longer than that.
    ns.write("net.ipv4.tcp_tw_reuse", "0");
    let _held = Condition::start(&ns, "time-wait", &["80", "9001"]);
    let checks = doctor(&ns, &[]);
    assert_findings(&checks, &[("ephemeral-ports", "warning")]);
    let check = &checks["ephemeral-ports"];
    let summary = check["summary"].as_str().unwrap();
    assert!(
        summary.ends_with("of 100 ephemeral ports toward 127.0.0.1:9001 are held in TIME_WAIT"),
        "{check:#}"
    );
    assert_eq!(check["profiles"][0], "datacenter-client.yaml");
    // The threshold is a flag: at 90% the same table is not a finding.
    assert_findings(&doctor(&ns, &["--port-use", "90"]), &[]);
}

#[test]
fn time_wait_bucket_overflow_with_a_small_tw_table() {
    let Some(ns) = Netns::create() else { return };
    ns.write("net.ipv4.tcp_max_tw_buckets", "5");
    let _held = Condition::start(&ns, "time-wait", &["30", "9001"]);
    let checks = doctor(&ns, &[]);
    assert_findings(&checks, &[("time-wait-overflow", "warning")]);
    let ev = evidence(&checks["time-wait-overflow"]);
    assert!(ev.contains("net.ipv4.tcp_max_tw_buckets = 5"), "{ev}");
    assert!(!ev.contains("TcpExt.TCPTimeWaitOverflow = 0"), "{ev}");
}

#[test]
fn close_wait_is_an_application_bug_and_fin_wait2_points_at_fin_timeout() {
    let Some(ns) = Netns::create() else { return };
    let _held = Condition::start(&ns, "half-closed", &["40", "9002"]);
    let checks = doctor(&ns, &["--close-wait", "40", "--fin-wait2", "40"]);
    assert_findings(
        &checks,
        &[("close-wait", "warning"), ("fin-wait2", "warning")],
    );
    let close_wait = &checks["close-wait"];
    assert!(evidence(close_wait).contains("40 on local 127.0.0.1:9002"));
    assert!(
        close_wait["fix"]
            .as_str()
            .unwrap()
            .contains("no sysctl fixes it")
    );
    assert_eq!(close_wait["keys"], serde_json::json!([]));
    assert_eq!(checks["fin-wait2"]["keys"][0], "net.ipv4.tcp_fin_timeout");
    // Below the default thresholds (32 CLOSE_WAIT is a finding, 256 FIN_WAIT2 is not).
    assert_findings(&doctor(&ns, &[]), &[("close-wait", "warning")]);
}

#[test]
fn syn_queue_drops_without_syn_cookies() {
    let Some(ns) = Netns::create() else { return };
    ns.write("net.ipv4.tcp_syncookies", "0");
    sh(
        &ns,
        "ip link add v0 type veth peer name v1; ip addr add 10.99.0.1/24 dev v0; ip link set v0 up; ip link set v1 up",
    );
    let _held = Condition::start(&ns, "syn-flood", &["30", "4", "9003"]);
    let checks = doctor(&ns, &[]);
    assert_findings(&checks, &[("syn-queue-full", "warning")]);
    let ev = evidence(&checks["syn-queue-full"]);
    assert!(ev.contains("net.ipv4.tcp_syncookies = 0"), "{ev}");
    assert!(!ev.contains("TcpExt.TCPReqQFullDrop = 0"), "{ev}");
    assert_eq!(checks["syn-queue-full"]["profiles"][0], "base.yaml");
}

#[test]
fn paws_reject_of_an_old_timestamp_reusing_a_time_wait_tuple() {
    let Some(ns) = Netns::create() else { return };
    let _held = Condition::start(&ns, "paws", &[]);
    let checks = doctor(&ns, &[]);
    assert_findings(&checks, &[("paws-rejects", "warning")]);
    let check = &checks["paws-rejects"];
    assert!(
        evidence(check).contains("net.ipv4.tcp_timestamps = 1"),
        "{check:#}"
    );
    assert_eq!(check["profiles"][0], "nat-facing-server.yaml");
    assert_eq!(check["keys"][0], "net.ipv4.tcp_tw_recycle");
}

#[test]
fn recorded_tables_via_proc_net() {
    // Conntrack full and dropping, from a recorded /proc/net (cannot be produced in a netns).
    let sb = Sandbox::fake(&[
        ("net.netfilter.nf_conntrack_count", "65536"),
        ("net.netfilter.nf_conntrack_max", "65536"),
        ("net.ipv4.ip_local_port_range", "32768\t60999"),
    ]);
    let dir = sb.dir.path().join("proc-net");
    std::fs::create_dir_all(dir.join("stat")).unwrap();
    std::fs::write(
        dir.join("stat/nf_conntrack"),
        "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop\n\
         00010000  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 0000002a 00000000\n\
         00010000  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001 00000010 00000000\n",
    )
    .unwrap();
    let run = sb
        .run(&[
            "doctor",
            "--proc-net",
            dir.to_str().unwrap(),
            "--format",
            "json",
        ])
        .expect(0);
    let json = run.json();
    let conntrack = &json["diagnosis"]["checks"][0];
    assert_eq!(conntrack["verdict"], "error");
    assert!(
        conntrack["summary"]
            .as_str()
            .unwrap()
            .contains("table full, dropping packet")
    );
    assert!(evidence(conntrack).contains("nf_conntrack stat drop = 58"));
    assert_eq!(json["findings"], 1);
}
