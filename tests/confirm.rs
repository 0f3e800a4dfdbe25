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
    // A real reboot has already dropped the unpersisted value; the fake tree cannot, and shows
    // that the revert wrote nothing (writing the pre-reboot value would be stale).
    assert_eq!(
        sb.fake_value("net.ipv4.tcp_fin_timeout"),
        "30\n",
        "after a reboot the revert records the rollback and writes nothing"
    );
    let history = sb.run(&["history", "--format", "json"]).expect(0).json();
    let last = &history["entries"][1]["record"];
    assert_eq!(last["kind"], "rollback", "{history}");
    assert_eq!(last["changes"], serde_json::json!([]), "{history}");
    let status = sb.run(&["status", "--format", "json"]).expect(0).json();
    assert_eq!(
        status["drift"],
        serde_json::json!([]),
        "released keys are not drift: {status}"
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
    // The watcher dies too (an OOM kill, kill -9): status says so…
    let _ = nix::sys::signal::kill(Pid::from_raw(watcher), Signal::SIGKILL);
    std::thread::sleep(Duration::from_millis(100));
    let status = sb.run(&["status"]).expect(0).stdout;
    assert!(status.contains("NOT running"), "{status}");
    // …and once the deadline passed, any command (here `status`) reverts the change.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "30\n");
    let status = sb.run(&["status"]).expect(0).stdout;
    assert!(
        status.contains("was due (Deadline) and has just been rolled back"),
        "{status}"
    );
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "60\n");
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

/// The fault points `args` passes through, in order (`name(detail):count`).
fn fault_points(sb: &Sandbox, args: &[&str]) -> Vec<String> {
    let log = sb.dir.path().join("points.log");
    let _ = std::fs::remove_file(&log);
    sb.run_env(args, &[("SYSPROF_FAULT_LOG", log.to_str().unwrap())]);
    std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The pending change's watcher pid, from `status`.
fn watcher_pid(sb: &Sandbox) -> Option<i32> {
    let status = sb.run(&["status", "--format", "json"]).expect(0).json();
    status["pending"]["change"]["watcher_pid"]
        .as_u64()
        .map(|p| p as i32)
}

/// Kills the pending change's watcher (an OOM kill, kill -9).
fn kill_watcher(sb: &Sandbox) {
    if let Some(pid) = watcher_pid(sb) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the history says, as record kinds.
fn kinds(sb: &Sandbox) -> Vec<String> {
    let history = sb.run(&["history", "--format", "json"]).expect(0).json();
    history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["record"]["kind"].as_str().unwrap().to_owned())
        .collect()
}

const FIN_30: &str = "version: 1\nname: fin\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n";

#[test]
fn kill_9_of_confirm_at_any_point_leaves_kernel_file_history_and_pending_in_agreement() {
    let sb = Sandbox::fake(&[("net.ipv4.tcp_fin_timeout", "60")]);
    let p = sb.file("p.yaml", FIN_30);
    let p = p.to_str().unwrap();
    sb.run(&["apply", p, "--confirm-within", "120s", "--watcher", "fork"])
        .expect(0);
    kill_watcher(&sb);
    let points = fault_points(&sb, &["confirm"]);
    assert!(points.len() >= 4, "confirm passes fault points: {points:?}");
    sb.run(&["rollback"]).expect(0);

    for point in &points {
        let sb = Sandbox::fake(&[("net.ipv4.tcp_fin_timeout", "60")]);
        sb.run(&["apply", p, "--confirm-within", "120s", "--watcher", "fork"])
            .expect(0);
        kill_watcher(&sb);
        let crashed = sb.run_env(&["confirm"], &[("SYSPROF_FAULT", point)]);
        assert_ne!(crashed.code, 0, "{point}: the fault fired");
        sb.run(&["recover"]).expect(0);

        let status = sb.run(&["status", "--format", "json"]).expect(0).json();
        let pending = !status["pending"].is_null();
        let persisted = std::fs::read_to_string(sb.persisted()).unwrap_or_default();
        assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "30\n", "{point}");
        match pending {
            // Not confirmed yet: nothing persisted, the apply in effect, confirm still works.
            true => {
                assert!(!persisted.contains("tcp_fin_timeout"), "{point}");
                assert_eq!(kinds(&sb), ["apply"], "{point}");
                sb.run(&["confirm"]).expect(0);
            }
            // Confirmed: persisted, recorded, nothing pending.
            false => {
                assert!(
                    persisted.contains("net.ipv4.tcp_fin_timeout = 30"),
                    "{point}"
                );
                assert_eq!(
                    kinds(&sb),
                    ["apply", "apply"],
                    "{point}: apply + its confirmation"
                );
            }
        }
        let status = sb.run(&["status"]).expect(0).stdout;
        assert!(
            status.contains("kernel, persisted file and history agree"),
            "{point}: {status}"
        );
        // One rollback undoes values and file together.
        sb.run(&["rollback"]).expect(0);
        assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "60\n", "{point}");
        assert!(!sb.persisted().exists(), "{point}");
    }
}

#[test]
fn a_revert_killed_mid_way_is_finished_by_the_next_command() {
    let setup = || {
        let sb = Sandbox::fake(&[
            ("net.ipv4.tcp_fin_timeout", "60"),
            ("net.ipv4.tcp_keepalive_time", "7200"),
        ]);
        let p = sb.file(
            "p.yaml",
            "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n  net.ipv4.tcp_keepalive_time: 600\n",
        );
        sb.run(&[
            "apply",
            p.to_str().unwrap(),
            "--confirm-within",
            "1s",
            "--watcher",
            "fork",
        ])
        .expect(0);
        kill_watcher(&sb);
        std::thread::sleep(Duration::from_millis(1100));
        sb
    };
    // The revert a due deadline triggers, run by `recover` (the watcher runs the same code).
    let probe = setup();
    let points = fault_points(&probe, &["recover"]);
    assert!(
        points.iter().any(|p| p.starts_with("after-write")),
        "the revert writes: {points:?}"
    );
    assert_eq!(probe.fake_value("net.ipv4.tcp_fin_timeout"), "60\n");

    for point in &points {
        let sb = setup();
        let crashed = sb.run_env(&["recover"], &[("SYSPROF_FAULT", point)]);
        assert_ne!(crashed.code, 0, "{point}");
        // Any command finishes the revert: here `status`, then `recover`.
        sb.run(&["status"]).expect(0);
        sb.run(&["recover"]).expect(0);
        assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "60\n", "{point}");
        assert_eq!(
            sb.fake_value("net.ipv4.tcp_keepalive_time"),
            "7200\n",
            "{point}"
        );
        let status = sb.run(&["status", "--format", "json"]).expect(0).json();
        assert!(status["pending"].is_null(), "{point}: {status}");
        assert!(status["unfinished"].is_null(), "{point}: {status}");
        assert_eq!(kinds(&sb), ["apply", "rollback"], "{point}");
    }
}

#[test]
fn tiny_confirm_windows_always_end_reverted_and_recorded() {
    for within in ["0s", "1ms", "10ms", "50ms"] {
        for round in 0..4 {
            let sb = Sandbox::fake(&[("net.ipv4.tcp_fin_timeout", "60")]);
            let p = sb.file("p.yaml", FIN_30);
            let run = sb.run(&[
                "apply",
                p.to_str().unwrap(),
                "--confirm-within",
                within,
                "--watcher",
                "fork",
            ]);
            assert_eq!(
                run.code, 0,
                "{within} #{round}: {}{}",
                run.stdout, run.stderr
            );
            let done = wait_for(Duration::from_secs(15), || {
                sb.fake_value("net.ipv4.tcp_fin_timeout") == "60\n"
                    && !sb.state().join("pending.json").exists()
            });
            assert!(done.is_some(), "{within} #{round}: reverted in time");
            // Let the watcher finish its bookkeeping, then everything agrees.
            sb.run(&["recover"]).expect(0);
            assert_eq!(kinds(&sb), ["apply", "rollback"], "{within} #{round}");
            assert!(!sb.persisted().exists(), "{within} #{round}");
        }
    }
}

#[test]
fn a_confirm_after_a_reboot_writes_nothing_and_names_the_reboot() {
    let sb = Sandbox::fake(&[
        ("net.ipv4.tcp_fin_timeout", "60"),
        (
            "kernel.random.boot_id",
            "1b6f6a2e-0000-4000-8000-000000000001",
        ),
    ]);
    let p = sb.file("p.yaml", FIN_30);
    sb.run(&[
        "apply",
        p.to_str().unwrap(),
        "--confirm-within",
        "120s",
        "--watcher",
        "fork",
    ])
    .expect(0);
    kill_watcher(&sb);
    common::write_key(
        &sb.root(),
        "kernel.random.boot_id",
        "1b6f6a2e-0000-4000-8000-000000000002",
    );
    // A real reboot dropped the unpersisted 30; the fake tree keeps it, and shows that confirm
    // neither persists it nor writes the stale pre-reboot 60 back.
    let late = sb.run(&["confirm"]).expect(exit::STATE);
    assert!(late.stderr.contains("reboot"), "{}", late.stderr);
    assert!(!late.stderr.contains("deadline"), "{}", late.stderr);
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "30\n");
    assert!(!sb.persisted().exists());
    assert_eq!(kinds(&sb), ["apply", "rollback"]);
}

/// A stand-in for systemd-run that starts the unit's command in another network namespace, as
/// systemd starts a transient unit in the host's: the watcher must find its own.
fn fake_systemd_run(dir: &std::path::Path, elsewhere: &Netns) -> std::path::PathBuf {
    let bin_dir = dir.join("fake-bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let script = format!(
        "#!/bin/sh\nwhile [ \"$1\" != -- ]; do shift; done; shift\nip netns exec {} setsid \"$@\" </dev/null >>{}/fake-systemd-run.log 2>&1 &\n",
        elsewhere.name,
        dir.display()
    );
    let path = bin_dir.join("systemd-run");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    bin_dir
}

#[test]
fn a_watcher_started_from_ip_netns_exec_reverts_that_namespace_and_no_other() {
    for watcher in ["fork", "systemd-run"] {
        let (Some(ns), Some(elsewhere)) = (Netns::create(), Netns::create()) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = format!(
            "{}:{}",
            fake_systemd_run(dir.path(), &elsewhere).display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let p = profile("datacenter-client.yaml");
        let before = read_all(&ns);
        let untouched = read_all(&elsewhere);
        let state = dir.path().join("state");
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(bin())
            .arg("--state-dir")
            .arg(&state)
            .arg("--sysctl-d")
            .arg(dir.path().join("sysctl.d"))
            .args(["apply", p.to_str().unwrap(), "--confirm-within", "1s"])
            .args(["--watcher", watcher])
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{watcher}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(applied(&ns), "{watcher}");
        let reverted = wait_for(Duration::from_secs(15), || read_all(&ns) == before);
        assert!(
            reverted.is_some(),
            "{watcher}: the namespace it was started from is reverted; watcher log:\n{}",
            std::fs::read_to_string(state.join("watcher.log")).unwrap_or_default()
        );
        assert_eq!(
            read_all(&elsewhere),
            untouched,
            "{watcher}: no other namespace"
        );
        let pending = std::fs::read_to_string(dir.path().join("state/history.jsonl")).unwrap();
        assert_eq!(pending.lines().count(), 2, "{watcher}: apply + rollback");
    }
}
