//! Health gates on real kernel counters: `sysprof health` and `apply --watch` inside throwaway
//! network namespaces, with real loopback traffic moving TcpExt.ListenOverflows; and the same
//! machinery against a fake /proc/net (`--proc-net`) for exact figures.

mod common;
mod traffic;

use std::time::{Duration, Instant};

use common::{Netns, Sandbox, profile};
use sysprof::error::exit;
use traffic::{Burst, tcpext};

const PROFILE: &str = "\
version: 1
name: listen-queue
sysctls:
  net.ipv4.tcp_fin_timeout: 25
  net.core.somaxconn: 8192
health:
  gates:
    TcpExt.ListenOverflows:
      max_increase: 0
      reason: the accept queue must not overflow after the change
";

#[test]
fn health_reports_real_listen_overflows_and_missing_counters() {
    let Some(ns) = Netns::create() else { return };
    let sb = Sandbox::netns(&ns);
    let p = sb.file("p.yaml", PROFILE);
    let p = p.to_str().unwrap();

    let quiet = sb
        .run(&["health", p, "--over", "300ms", "--format", "json"])
        .expect(0)
        .json();
    assert_eq!(quiet["healthy"], true, "{quiet}");
    assert_eq!(quiet["checks"][0]["value"], 0.0);

    let mut burst = Burst::now(&ns.name, 9101, 15.0);
    assert!(burst.wait_fired());
    let deadline = Instant::now() + Duration::from_secs(10);
    while tcpext(&ns.name, "ListenOverflows") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let overflows = tcpext(&ns.name, "ListenOverflows");
    assert!(overflows > 0, "the burst overflowed the accept queue");

    let run = sb.run(&[
        "health",
        p,
        "--over",
        "300ms",
        "--format",
        "json",
        "--gate",
        "TcpExt.ListenOverflows:max=0",
        "--gate",
        "TcpExt.NoSuchCounter:max_increase=0",
        "--gate",
        "sockets.LISTEN:max=5",
        "--gate",
        "ports.ephemeral_use:max_ratio=0.9",
    ]);
    let json = run.expect(exit::GATE_TRIPPED).json();
    let check = |counter: &str, limit: &str| {
        json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["gate"]["counter"] == counter && c["gate"]["limit"] == limit)
            .unwrap_or_else(|| panic!("no {counter} {limit} in {json}"))
            .clone()
    };
    let level = check("TcpExt.ListenOverflows", "max");
    assert_eq!(level["status"], "tripped", "{level}");
    assert!(level["current"].as_f64().unwrap() >= overflows as f64);
    let missing = check("TcpExt.NoSuchCounter", "max_increase");
    assert_eq!(
        missing["status"], "missing",
        "missing counters are reported, not fatal"
    );
    assert!(
        missing["note"]
            .as_str()
            .unwrap()
            .contains("not on this kernel")
    );
    assert_eq!(
        check("sockets.LISTEN", "max")["value"],
        1.0,
        "the one listener"
    );
    let ports = check("ports.ephemeral_use", "max_ratio");
    assert_eq!(ports["status"], "ok");
    assert!(
        ports["value"].as_f64().unwrap() > 0.0,
        "the clients hold ephemeral ports: {ports}"
    );
    assert_eq!(json["healthy"], false);

    let human = sb
        .run(&["health", p, "--gate", "TcpExt.ListenOverflows:max=0"])
        .expect(exit::GATE_TRIPPED);
    assert!(
        human
            .stdout
            .contains("TRIPPED  TcpExt.ListenOverflows is at"),
        "{}",
        human.stdout
    );
}

#[test]
fn a_tripped_gate_rolls_the_watched_apply_back_and_exits_8() {
    let Some(ns) = Netns::create() else { return };
    let sb = Sandbox::netns(&ns);
    let p = sb.file("p.yaml", PROFILE);
    let before = (
        ns.read("net.ipv4.tcp_fin_timeout"),
        ns.read("net.core.somaxconn"),
    );
    // The burst starts as soon as the watched change is in the kernel.
    let _burst = Burst::when(
        &ns.name,
        9102,
        20.0,
        "/proc/sys/net/ipv4/tcp_fin_timeout",
        "25",
    );

    let started = Instant::now();
    let run = sb.run(&[
        "apply",
        p.to_str().unwrap(),
        "--watch",
        "30s",
        "--format",
        "json",
    ]);
    let took = started.elapsed();
    let json = run.expect(exit::GATE_TRIPPED).json();
    assert!(
        took < Duration::from_secs(25),
        "stopped at the trip, not at the end of the window ({took:?})"
    );
    assert_eq!(json["outcome"], "rolled_back", "{json}");
    let tripped = &json["tripped"][0];
    assert_eq!(tripped["gate"]["counter"], "TcpExt.ListenOverflows");
    assert!(tripped["value"].as_f64().unwrap() > 0.0);
    assert_eq!(
        json["rollback"]["record"]["changes"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    assert_eq!(
        (
            ns.read("net.ipv4.tcp_fin_timeout"),
            ns.read("net.core.somaxconn")
        ),
        before
    );
    assert!(
        !sb.persisted().exists(),
        "nothing is persisted before a healthy window"
    );
    let status = sb.run(&["status", "--format", "json"]).expect(0).json();
    assert!(status["pending"].is_null(), "{status}");
    let history = sb.run(&["history", "--format", "json"]).expect(0).json();
    let kinds: Vec<&str> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["record"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["apply", "rollback"]);

    // A retry of the same version (a restarted pod, a rerun play) is refused at once: exit 8,
    // nothing written, the trip named.
    let again = sb.run(&["apply", p.to_str().unwrap(), "--watch", "30s"]);
    let again = again.expect(exit::GATE_TRIPPED);
    assert!(
        again
            .stderr
            .contains("this version of profile listen-queue")
            && again.stderr.contains("tripped a health gate on this host")
            && again.stderr.contains("TcpExt.ListenOverflows rose by")
            && again.stderr.contains("--retry-tripped"),
        "{}",
        again.stderr
    );
    let plain = sb.run(&["apply", p.to_str().unwrap()]);
    plain.expect(exit::GATE_TRIPPED);
    // `status` says which version is held back, and why.
    let status = sb.run(&["status"]).expect(0).stdout;
    assert!(
        status.contains("tripped: profile listen-queue (")
            && status.contains("TcpExt.ListenOverflows rose by")
            && status.contains("--retry-tripped"),
        "{status}"
    );
    let status = sb.run(&["status", "--format", "json"]).expect(0).json();
    assert_eq!(status["tripped"][0]["profile"], "listen-queue", "{status}");
    assert_eq!(
        (
            ns.read("net.ipv4.tcp_fin_timeout"),
            ns.read("net.core.somaxconn")
        ),
        before,
        "a refused retry writes nothing"
    );
    let history = sb.run(&["history", "--format", "json"]).expect(0).json();
    assert_eq!(history["entries"].as_array().unwrap().len(), 2);
    // On purpose it goes through (no watch: nothing burst-triggers now), and so does a new
    // version of the profile.
    sb.run(&["apply", p.to_str().unwrap(), "--retry-tripped"])
        .expect(0);
    assert_eq!(ns.read("net.ipv4.tcp_fin_timeout").trim(), "25");
    sb.run(&["rollback"]).expect(0);
    let fixed = sb.file(
        "p.yaml",
        &PROFILE.replace("somaxconn: 8192", "somaxconn: 8191"),
    );
    sb.run(&["apply", fixed.to_str().unwrap()]).expect(0);
    assert_eq!(ns.read("net.core.somaxconn").trim(), "8191");
}

/// Off a terminal (a CI log, journald) a long watch writes a line with the gate values per
/// interval: the first sample, then one each `--progress-every`, never one per sample.
#[test]
fn a_watch_off_a_terminal_logs_a_progress_line_per_interval() {
    let Some(ns) = Netns::create() else { return };
    let sb = Sandbox::netns(&ns);
    let p = profile("datacenter-client.yaml");
    let run = sb
        .run(&[
            "apply",
            p.to_str().unwrap(),
            "--watch",
            "3s",
            "--interval",
            "250ms",
            "--progress-every",
            "1s",
        ])
        .expect(0);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("watching: "))
        .collect();
    // Samples every 250 ms over 3 s (~12), a line per second of them: 3 or 4, each complete.
    assert!((3..=4).contains(&lines.len()), "{lines:?}\n{}", run.stderr);
    assert!(!run.stderr.contains('\r'), "no redraws off a terminal");
    for line in &lines {
        assert!(
            line.contains("s left | ") && line.contains("Tcp.AttemptFails"),
            "{line}"
        );
    }
    // JSON output keeps stdout one document; the progress still goes to stderr.
    sb.run(&["rollback"]).expect(0);
    let run = sb
        .run(&[
            "apply",
            p.to_str().unwrap(),
            "--watch",
            "1s",
            "--format",
            "json",
        ])
        .expect(0);
    let _: serde_json::Value = run.json();
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.starts_with("watching: "))
            .count(),
        1,
        "{}",
        run.stderr
    );
}

#[test]
fn a_healthy_window_persists_and_one_rollback_undoes_it_all() {
    let Some(ns) = Netns::create() else { return };
    let sb = Sandbox::netns(&ns);
    let p = profile("datacenter-client.yaml");
    let before = ns.read("net.ipv4.ip_local_port_range");

    let run = sb
        .run(&["apply", p.to_str().unwrap(), "--watch", "2s"])
        .expect(0);
    assert!(
        run.stdout
            .contains("NOT persisted yet; watching 4 gate(s) for 2s"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("healthy for 2s: kept datacenter-client, persisted to"),
        "{}",
        run.stdout
    );
    assert_eq!(ns.read("net.ipv4.ip_local_port_range"), "10240\t65535\n");
    let persisted = std::fs::read_to_string(sb.persisted()).unwrap();
    assert!(
        persisted.contains("net.ipv4.ip_local_port_range = 10240 65535"),
        "{persisted}"
    );

    let history = sb.run(&["history"]).expect(0).stdout;
    assert!(
        history.contains("confirmed by #2") && history.contains("in effect"),
        "{history}"
    );
    sb.run(&["rollback"]).expect(0);
    assert_eq!(ns.read("net.ipv4.ip_local_port_range"), before);
    assert!(
        !sb.persisted().exists(),
        "the persisted file is undone with the values"
    );
    let again = sb.run(&["rollback"]).expect(exit::STATE);
    assert!(
        again.stderr.contains("nothing to roll back"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_fake_proc_net_trips_with_exact_figures() {
    let sb = Sandbox::fake(&[
        ("net.ipv4.tcp_fin_timeout", "60"),
        ("net.ipv4.ip_local_port_range", "32768\t60999"),
    ]);
    let net = sb.dir.path().join("proc-net");
    std::fs::create_dir_all(&net).unwrap();
    let netstat = |n: u32| format!("TcpExt: ListenOverflows PAWSEstab\nTcpExt: {n} 0\n");
    std::fs::write(net.join("netstat"), netstat(7)).unwrap();
    let p = sb.file("p.yaml", "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\nhealth:\n  interval: 100ms\n  gates:\n    TcpExt.ListenOverflows: {max_increase: 2}\n");
    let net_arg = net.to_str().unwrap().to_owned();
    let bump = {
        let path = net.join("netstat");
        let done = sb.root().join("net/ipv4/tcp_fin_timeout");
        std::thread::spawn(move || {
            for _ in 0..200 {
                if std::fs::read_to_string(&done).unwrap_or_default().trim() == "30" {
                    std::thread::sleep(Duration::from_millis(300));
                    std::fs::write(&path, netstat(10)).unwrap();
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let run = sb.run(&[
        "apply",
        p.to_str().unwrap(),
        "--watch",
        "20s",
        "--proc-net",
        &net_arg,
    ]);
    bump.join().unwrap();
    let run = run.expect(exit::GATE_TRIPPED);
    assert!(
        run.stderr
            .contains("TcpExt.ListenOverflows rose by 3 (7 → 10), limit max_increase 2"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("rolled back p: 1 key(s) restored"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "60\n");

    // Sources that are absent (no snmp, no conntrack, no socket tables) are reported, not fatal.
    let health = sb
        .run(&[
            "health",
            p.to_str().unwrap(),
            "--proc-net",
            &net_arg,
            "--over",
            "100ms",
            "--format",
            "json",
            "--gate",
            "Tcp.AttemptFails:max_rate=1",
        ])
        .expect(0)
        .json();
    let unavailable = health["unavailable"].to_string();
    assert!(
        unavailable.contains("snmp") && unavailable.contains("tcp6"),
        "{unavailable}"
    );
    assert_eq!(health["checks"][1]["status"], "missing");
}

#[test]
fn gates_need_a_source_and_sane_sections() {
    let sb = Sandbox::fake(&[("net.ipv4.tcp_fin_timeout", "60")]);
    let bare = sb.file(
        "bare.yaml",
        "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n",
    );
    let run = sb
        .run(&["apply", bare.to_str().unwrap(), "--watch", "1s"])
        .expect(exit::INVALID_INPUT);
    assert!(
        run.stderr.contains("has no health gates to watch"),
        "{}",
        run.stderr
    );
    assert_eq!(
        sb.fake_value("net.ipv4.tcp_fin_timeout"),
        "60\n",
        "refused before any write"
    );

    let typo = sb.file(
        "typo.yaml",
        "version: 1\nsysctls: {}\nhealth:\n  gates:\n    TcpExt.ListenOverflows: {max_increse: 0}\n",
    );
    let run = sb
        .run(&["validate", typo.to_str().unwrap()])
        .expect(exit::INVALID_INPUT);
    assert!(
        run.stderr.contains("typo.yaml:5:30") && run.stderr.contains("did you mean `max_increase`"),
        "{}",
        run.stderr
    );
    let run = sb.run(&[
        "health",
        bare.to_str().unwrap(),
        "--gate",
        "TcpExt.ListenOverflows",
    ]);
    assert_eq!(run.code, exit::USAGE, "{}", run.stderr);
}
