//! Confirm or revert: a change applied with `--confirm-within` (or `--watch`) is rolled back by a
//! detached watcher unless confirmed in time — also when the applying process and its whole
//! process group are killed with SIGKILL (what a dying SSH session does), and after a "reboot".

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Netns, Sandbox, bin, profile};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use sysprof::error::exit;

/// Keys datacenter-client.yaml changes in a fresh namespace, and their values there after.
const KEYS: &[(&str, &str)] = &[
    ("net.ipv4.tcp_fin_timeout", "5\n"),
    ("net.ipv4.ip_local_port_range", "10240\t65535\n"),
    ("net.ipv4.tcp_syn_retries", "2\n"),
];

fn read_all(ns: &Netns) -> Vec<String> {
    KEYS.iter().map(|(k, _)| ns.read(k)).collect()
}

fn applied(ns: &Netns) -> bool {
    KEYS.iter().all(|(k, v)| ns.read(k) == *v)
}

/// Starts `sysprof <sandbox flags> args` as the leader of its own process group.
fn spawn_group(sb: &Sandbox, args: &[&str]) -> Child {
    Command::new(bin())
        .args(&sb.args)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap()
}

/// Polls `cond` every 50 ms for at most `limit`; returns the time it took.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Waits (bounded) for the watcher to log that it finished with `needle`, and returns the log.
fn watcher_done(sb: &Sandbox, needle: &str) -> String {
    let path = sb.state().join("watcher.log");
    let read = || std::fs::read_to_string(&path).unwrap_or_default();
    wait_for(Duration::from_secs(15), || read().contains(needle));
    read()
}

/// SIGKILL to the whole process group, as when the session that ran apply dies.
fn kill_group(child: &mut Child) {
    let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    let _ = child.wait();
}

#[test]
fn an_unconfirmed_change_is_rolled_back_after_its_session_is_killed() {
    let Some(ns) = Netns::create() else { return };
    let sb = Sandbox::netns(&ns);
    let p = profile("datacenter-client.yaml");
    let before = read_all(&ns);

    let started = Instant::now();
    let mut apply = spawn_group(
        &sb,
        &["apply", p.to_str().unwrap(), "--confirm-within", "3s"],
    );
    assert!(
        wait_for(Duration::from_secs(10), || applied(&ns)).is_some(),
        "the change landed"
    );
    kill_group(&mut apply);
    assert!(
        !sb.persisted().exists(),
        "nothing is persisted before the confirmation"
    );
    let status = sb.run(&["status", "--format", "json"]).expect(0).json();
    let pending = &status["pending"];
    assert_eq!(
        pending["change"]["profile"]["name"], "datacenter-client",
        "{status}"
    );
    assert!(pending["seconds_left"].as_u64().unwrap() <= 3, "{status}");
    assert_eq!(
        pending["watcher_alive"], true,
        "the watcher escaped the killed group: {status}"
    );
    let human = sb.run(&["status"]).expect(0).stdout;
    assert!(
        human.contains("PENDING change") && human.contains("unless `sysprof confirm` runs"),
        "{human}"
    );

    let log = watcher_done(&sb, "\"reason\":\"deadline\"");
    assert!(log.contains("\"reason\":\"deadline\""), "{log}");
    assert_eq!(
        read_all(&ns),
        before,
        "the old values came back after the deadline"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "not before the deadline: {:?}",
        started.elapsed()
    );
    assert!(!sb.persisted().exists());
    let status = sb.run(&["status", "--format", "json"]).expect(0).json();
    assert!(status["pending"].is_null(), "{status}");
    let history = sb.run(&["history", "--format", "json"]).expect(0).json();
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "apply, then the watcher's rollback");
    assert_eq!(entries[1]["record"]["kind"], "rollback");
}

#[test]
fn a_confirmation_in_time_keeps_the_change_and_persists_it() {
    let Some(ns) = Netns::create() else { return };
    let sb = Sandbox::netns(&ns);
    let p = profile("datacenter-client.yaml");
    let p = p.to_str().unwrap();
    let before = read_all(&ns);

    let run = sb.run(&["apply", p, "--confirm-within", "3s"]).expect(0);
    assert!(
        run.stdout
            .contains("NOT persisted: run `sysprof confirm` within"),
        "{}",
        run.stdout
    );
    assert!(applied(&ns));
    let refused = sb.run(&["apply", p]).expect(exit::STATE);
    assert!(
        refused.stderr.contains("a change awaits confirmation"),
        "{}",
        refused.stderr
    );

    let confirmed = sb.run(&["confirm"]).expect(0);
    assert!(
        confirmed
            .stdout
            .contains("confirmed datacenter-client: persisted to"),
        "{}",
        confirmed.stdout
    );
    let persisted = std::fs::read_to_string(sb.persisted()).unwrap();
    assert!(
        persisted.contains("net.ipv4.tcp_fin_timeout = 5"),
        "{persisted}"
    );

    std::thread::sleep(Duration::from_millis(4000));
    assert!(
        applied(&ns),
        "past the old deadline, the confirmed change stays"
    );
    let again = sb.run(&["confirm"]).expect(exit::STATE);
    assert!(
        again.stderr.contains("nothing awaits confirmation"),
        "{}",
        again.stderr
    );
    let log = watcher_done(&sb, "\"action\":\"gone\"");
    assert!(
        log.contains("\"action\":\"gone\""),
        "the watcher stood down: {log}"
    );

    sb.run(&["rollback"]).expect(0);
    assert_eq!(read_all(&ns), before, "one rollback undoes the values…");
    assert!(!sb.persisted().exists(), "…and the persisted file");
}

#[test]
fn a_killed_watch_is_rolled_back_at_once() {
    let Some(ns) = Netns::create() else { return };
    let sb = Sandbox::netns(&ns);
    let p = profile("datacenter-client.yaml");
    let before = read_all(&ns);

    let mut apply = spawn_group(&sb, &["apply", p.to_str().unwrap(), "--watch", "60s"]);
    assert!(wait_for(Duration::from_secs(10), || applied(&ns)).is_some());
    kill_group(&mut apply);
    let log = watcher_done(&sb, "\"reason\":\"owner_died\"");
    assert!(log.contains("\"reason\":\"owner_died\""), "{log}");
    assert_eq!(
        read_all(&ns),
        before,
        "the watcher rolled back when the watching process died"
    );
    assert!(!sb.persisted().exists());
}

#[test]
fn a_reboot_before_the_confirmation_reverts_too() {
    // A fake tree with a boot id: changing it is what a reboot looks like to the watcher.
    let sb = Sandbox::fake(&[
        ("net.ipv4.tcp_fin_timeout", "60"),
        (
            "kernel.random.boot_id",
            "1b6f6a2e-0000-4000-8000-000000000001",
        ),
    ]);
    let p = sb.file(
        "p.yaml",
        "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n",
    );
    sb.run(&["apply", p.to_str().unwrap(), "--confirm-within", "120s"])
        .expect(0);
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "30\n");
    assert!(!sb.persisted().exists(), "so boot cannot re-apply it");

    common::write_key(
        &sb.root(),
        "kernel.random.boot_id",
        "1b6f6a2e-0000-4000-8000-000000000002",
    );
    let log = watcher_done(&sb, "\"reason\":\"rebooted\"");
    assert!(log.contains("\"reason\":\"rebooted\""), "{log}");
    assert_eq!(
        sb.fake_value("net.ipv4.tcp_fin_timeout"),
        "60\n",
        "a new boot id means the unconfirmed change is gone: recorded as rolled back"
    );
    let late = sb.run(&["confirm"]).expect(exit::STATE);
    assert!(
        late.stderr.contains("nothing awaits confirmation"),
        "{}",
        late.stderr
    );
}

#[test]
fn without_a_watcher_the_next_command_enforces_the_deadline() {
    let sb = Sandbox::fake(&[
        ("net.ipv4.tcp_fin_timeout", "60"),
        ("net.ipv4.tcp_keepalive_time", "7200"),
    ]);
    let first = sb.file(
        "a.yaml",
        "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n",
    );
    let second = sb.file(
        "b.yaml",
        "version: 1\nsysctls:\n  net.ipv4.tcp_keepalive_time: 600\n",
    );
    sb.run(&["apply", first.to_str().unwrap(), "--confirm-within", "1s"])
        .expect(0);
    let status = sb.run(&["status", "--format", "json"]).expect(0).json();
    let watcher = status["pending"]["change"]["watcher_pid"].as_u64().unwrap() as i32;
    // The watcher dies too (as after a reboot, or an OOM kill): nothing enforces the deadline…
    let _ = nix::sys::signal::kill(Pid::from_raw(watcher), Signal::SIGKILL);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "30\n");
    let status = sb.run(&["status"]).expect(0).stdout;
    assert!(
        status.contains("is due for rollback (Deadline)"),
        "{status}"
    );
    // …until the next apply, which rolls the expired change back before doing its own.
    sb.run(&["apply", second.to_str().unwrap()]).expect(0);
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "60\n");
    assert_eq!(sb.fake_value("net.ipv4.tcp_keepalive_time"), "600\n");
    let history = sb.run(&["history", "--format", "json"]).expect(0).json();
    let kinds: Vec<&str> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["record"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["apply", "rollback", "apply"]);
}

#[test]
fn a_healthy_watch_can_hand_over_to_a_person() {
    let sb = Sandbox::fake(&[("net.ipv4.tcp_fin_timeout", "60")]);
    let net = sb.dir.path().join("net");
    std::fs::create_dir_all(&net).unwrap();
    std::fs::write(net.join("netstat"), "TcpExt: ListenOverflows\nTcpExt: 0\n").unwrap();
    let p = sb.file("p.yaml", "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\nhealth:\n  gates:\n    TcpExt.ListenOverflows: {max_increase: 0}\n");
    let args = [
        "apply",
        p.to_str().unwrap(),
        "--watch",
        "1s",
        "--confirm-within",
        "60s",
    ];
    let run = sb.run(
        &[
            &args[..],
            &["--proc-net", net.to_str().unwrap(), "--format", "json"],
        ]
        .concat(),
    );
    let json = run.expect(0).json();
    assert_eq!(json["outcome"], "awaiting_confirmation", "{json}");
    assert_eq!(json["pending"]["mode"], "confirm", "a person confirms now");
    assert!(json["pending"]["owner"].is_null());
    assert!(!sb.persisted().exists());
    sb.run(&["confirm"]).expect(0);
    assert!(sb.persisted().exists());
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "30\n");
}
