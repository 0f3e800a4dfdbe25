//! Concurrency through the real binary: many sysprof processes at once on one state dir must
//! serialise on the lock, leave a linear history of verifiable snapshots, and a kernel state
//! that replaying that history explains; a held lock with `--lock-timeout 0` is refused naming
//! the holder.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Sandbox, bin, snapshot_dir};
use nix::fcntl::{Flock, FlockArg};

const TREE: &[(&str, &str)] = &[
    ("net.core.somaxconn", "4096"),
    ("net.ipv4.ip_local_port_range", "32768\t60999"),
    ("net.ipv4.tcp_fin_timeout", "60"),
    ("net.ipv4.tcp_keepalive_intvl", "75"),
    ("net.ipv4.tcp_keepalive_time", "7200"),
    ("net.ipv4.tcp_syn_retries", "6"),
];

/// Three profiles that overlap on some keys and not on others.
const PROFILES: &[(&str, &str)] = &[
    (
        "a.yaml",
        "version: 1\nname: a\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n  net.ipv4.tcp_keepalive_time: 600\n  net.ipv4.tcp_syn_retries: 3\n",
    ),
    (
        "b.yaml",
        "version: 1\nname: b\nsysctls:\n  net.ipv4.tcp_fin_timeout: 20\n  net.ipv4.tcp_keepalive_intvl: 30\n  net.core.somaxconn: 8192\n",
    ),
    (
        "c.yaml",
        "version: 1\nname: c\nsysctls:\n  net.ipv4.ip_local_port_range: [10000, 59999]\n  net.ipv4.tcp_syn_retries: 4\n  net.ipv4.tcp_keepalive_time: 900\n",
    ),
];

/// A value as the kernel compares it: whitespace-separated tokens.
fn norm(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn twenty_concurrent_applies_and_rollbacks_leave_a_linear_replayable_history() {
    const RUNS: usize = 20;
    let sb = Sandbox::fake(TREE);
    let profiles: Vec<String> = PROFILES
        .iter()
        .map(|(name, text)| sb.file(name, text).display().to_string())
        .collect();

    // Every fourth run is a rollback; the applies cycle through the three profiles.
    let jobs: Vec<Vec<String>> = (0..RUNS)
        .map(|i| match i % 4 {
            3 => vec!["rollback".to_owned()],
            k => vec!["apply".to_owned(), profiles[(i / 4 + k) % 3].clone()],
        })
        .collect();
    let children: Vec<_> = jobs
        .iter()
        .map(|job| {
            Command::new(bin())
                .args(&sb.args)
                .args(["--lock-timeout", "60", "--format", "json"])
                .args(job)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();

    let mut reported = BTreeSet::new();
    let (mut applied, mut in_sync, mut rolled_back, mut nothing) = (0, 0, 0, 0);
    for (job, child) in jobs.iter().zip(children) {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let json: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{job:?}: not JSON ({e}): {stdout}\n{stderr}"));
        match (job[0].as_str(), out.status.code()) {
            ("apply", Some(0)) => match json["result"]["outcome"].as_str() {
                Some("applied") => {
                    applied += 1;
                    reported.insert(json["result"]["id"].as_str().unwrap().to_owned());
                }
                Some("in_sync") => in_sync += 1,
                other => panic!("{job:?}: outcome {other:?}: {stdout}"),
            },
            ("rollback", Some(0)) => {
                rolled_back += 1;
                reported.insert(json["rollback"]["id"].as_str().unwrap().to_owned());
            }
            ("rollback", Some(6)) => {
                nothing += 1;
                assert!(
                    stderr.contains("nothing to roll back") && json["exit_code"] == 6,
                    "{job:?}: {stdout}\n{stderr}"
                );
            }
            (_, code) => panic!("{job:?} exited {code:?}\n{stdout}\n{stderr}"),
        }
    }
    assert_eq!(applied + in_sync + rolled_back + nothing, RUNS);
    assert!(applied > 0, "at least the first apply changes something");

    // The history is linear: seq 1..n, no gaps, no duplicates, exactly the changes reported.
    let history = sb.run(&["history", "--format", "json"]).expect(0).json();
    let entries = history["entries"].as_array().unwrap();
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=entries.len() as u64).collect::<Vec<_>>());
    let ids: BTreeSet<String> = entries
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), entries.len(), "duplicate ids");
    assert_eq!(
        ids, reported,
        "history = the changes the processes reported"
    );
    assert!(!sb.state().join("journal.json").exists());

    // Every snapshot verifies on its own and says what the history says.
    for e in entries {
        let id = e["id"].as_str().unwrap();
        let shown = sb.run(&["show", id, "--format", "json"]).expect(0).json();
        assert_eq!(shown["record"], e["record"], "{id}");
        assert_eq!(shown["record"]["seq"], e["seq"], "{id}");
    }

    // Replay: each record's `before` is what the previous records left (no lost update), and
    // the kernel ends where the replay ends.
    let mut values: BTreeMap<String, String> =
        TREE.iter().map(|(k, v)| (k.to_string(), norm(v))).collect();
    let mut persisted: Option<String> = None;
    let mut touched = BTreeSet::new();
    for e in entries {
        let record = &e["record"];
        for c in record["changes"].as_array().unwrap() {
            let key = c["key"].as_str().unwrap().to_owned();
            assert_eq!(
                norm(c["before"].as_str().unwrap()),
                values[&key],
                "#{} {key}: before",
                e["seq"]
            );
            values.insert(key.clone(), norm(c["after"].as_str().unwrap()));
            touched.insert(key);
        }
        if let Some(p) = record["persist"].as_object() {
            assert_eq!(
                p["before"].as_str(),
                persisted.as_deref(),
                "#{} persisted before",
                e["seq"]
            );
            persisted = p["after"].as_str().map(str::to_owned);
        }
    }
    assert!(!touched.is_empty());
    for key in &touched {
        assert_eq!(norm(&sb.fake_value(key)), values[key], "{key}");
    }
    let last = entries.last().unwrap();
    for c in last["record"]["changes"].as_array().unwrap() {
        let key = c["key"].as_str().unwrap();
        assert_eq!(
            norm(&sb.fake_value(key)),
            norm(c["after"].as_str().unwrap()),
            "{key}: the last entry's value"
        );
    }
    for (key, value) in TREE {
        if !touched.contains(*key) {
            assert_eq!(norm(&sb.fake_value(key)), norm(value), "{key} untouched");
        }
    }
    assert_eq!(
        std::fs::read_to_string(sb.persisted()).ok(),
        persisted,
        "persisted file"
    );
    let status = sb.run(&["status", "--format", "json"]).expect(0).json();
    assert_eq!(status["drift"], serde_json::json!([]), "{status}");
    assert!(status["unfinished"].is_null() && status["lock_holder"].is_null());

    println!(
        "concurrent runs: {RUNS}, consistent (applied {applied}, in sync {in_sync}, rolled back {rolled_back}, nothing to roll back {nothing}; history {})",
        entries.len()
    );
}

#[test]
fn a_held_lock_is_refused_with_lock_timeout_0_naming_the_holder() {
    let sb = Sandbox::fake(TREE);
    let a = sb.file(PROFILES[0].0, PROFILES[0].1);
    let b = sb.file(PROFILES[1].0, PROFILES[1].1);
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    sb.run(&["apply", a]).expect(0);
    let tree = snapshot_dir(&sb.root());
    let etc = snapshot_dir(&sb.dir.path().join("sysctl.d"));
    let history = std::fs::read(sb.state().join("history.jsonl")).unwrap();

    // Hold the lock the way sysprof does: flock(2) on state/lock, our pid inside.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(sb.state().join("lock"))
        .unwrap();
    let held = Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();
    held.set_len(0).unwrap();
    (&*held)
        .write_all(format!("{}\n", std::process::id()).as_bytes())
        .unwrap();
    let holder = format!("held by pid {}", std::process::id());

    for args in [
        vec!["--lock-timeout", "0", "apply", b],
        vec!["--lock-timeout", "0", "rollback"],
        vec!["--lock-timeout", "0", "recover"],
    ] {
        let started = Instant::now();
        let run = sb.run(&args).expect(6);
        assert!(
            run.stderr.contains("another sysprof is changing this host")
                && run.stderr.contains(&holder),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "timeout 0 does not wait"
        );
    }
    let json = sb
        .run(&["--lock-timeout", "0", "--format", "json", "apply", b])
        .expect(6)
        .json();
    assert_eq!(json["exit_code"], 6);
    assert!(json["error"].as_str().unwrap().contains(&holder), "{json}");
    let status = sb.run(&["status", "--format", "json"]).expect(0).json();
    assert_eq!(status["lock_holder"], std::process::id(), "{status}");

    assert_eq!(snapshot_dir(&sb.root()), tree, "refused runs change no key");
    assert_eq!(snapshot_dir(&sb.dir.path().join("sysctl.d")), etc);
    assert_eq!(
        std::fs::read(sb.state().join("history.jsonl")).unwrap(),
        history
    );

    // With a timeout, a waiting apply goes ahead as soon as the lock is released.
    let mut waiting = Command::new(bin())
        .args(&sb.args)
        .args(["--lock-timeout", "30", "apply", b])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        waiting.try_wait().unwrap().is_none(),
        "it waits for the lock"
    );
    assert_eq!(
        snapshot_dir(&sb.root()),
        tree,
        "nothing written while waiting"
    );
    drop(held);
    let done = waiting.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(sb.fake_value("net.core.somaxconn"), "8192\n");
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "20\n");
    let history = sb.run(&["history", "--format", "json"]).expect(0).json();
    assert_eq!(history["entries"].as_array().unwrap().len(), 2);
}
