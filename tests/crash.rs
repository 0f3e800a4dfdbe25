//! Crash consistency through the real binary: abort `apply` and `rollback` at every fault point
//! (built with `--features fault-injection`), then check that the next commands see and finish
//! the interrupted change and that kernel values, the persisted file and the history are exactly
//! the old state or exactly the new one, never a mix. Runs on a fake tree and for real inside a
//! network namespace. A real `kill -9` from outside, while a write is blocked on a FIFO, is
//! recovered the same way.

mod common;

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Netns, Sandbox, bin, rel};

/// The keys the crash profile changes, with the values of a fresh tree (and a fresh netns).
const KEYS: &[(&str, &str)] = &[
    ("net.ipv4.ip_local_port_range", "32768\t60999"),
    ("net.ipv4.tcp_fin_timeout", "60"),
    ("net.ipv4.tcp_keepalive_time", "7200"),
    ("net.ipv4.tcp_syn_retries", "6"),
];

const PROFILE: &str = "\
version: 1
name: crashy
sysctls:
  net.ipv4.tcp_fin_timeout: 30
  net.ipv4.tcp_keepalive_time: 600
  net.ipv4.tcp_syn_retries: 3
  net.ipv4.ip_local_port_range: [10000, 59999]
";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Env {
    Fake,
    Netns,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Apply,
    Rollback,
}

/// One history entry without what differs between sandboxes (ids, times, paths).
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    seq: u64,
    kind: String,
    changes: Vec<(String, String, String)>,
    persist: Option<(Option<String>, Option<String>)>,
    restores: Option<u64>,
    in_effect: bool,
}

/// Everything a crash may leave behind that matters: kernel values, persisted file, history.
#[derive(Clone, Debug, PartialEq)]
struct State {
    kernel: Vec<(String, String)>,
    persisted: Option<String>,
    history: Vec<Entry>,
}

/// A fresh sandbox (fake tree, or a brand-new network namespace).
struct Case {
    sb: Sandbox,
    ns: Option<Netns>,
}

impl Case {
    fn new(env: Env) -> Option<Self> {
        match env {
            Env::Fake => Some(Self {
                sb: Sandbox::fake(KEYS),
                ns: None,
            }),
            Env::Netns => {
                let ns = Netns::create()?;
                Some(Self {
                    sb: Sandbox::netns(&ns),
                    ns: Some(ns),
                })
            }
        }
    }

    /// Raw kernel text of every key (file bytes on the fake tree, /proc/sys in the netns).
    fn kernel(&self) -> Vec<(String, String)> {
        match &self.ns {
            None => KEYS
                .iter()
                .map(|(k, _)| (k.to_string(), self.sb.fake_value(k)))
                .collect(),
            Some(ns) => {
                let paths: Vec<PathBuf> = KEYS
                    .iter()
                    .map(|(k, _)| Path::new("/proc/sys").join(rel(k)))
                    .collect();
                let out = Command::new("ip")
                    .args(["netns", "exec", &ns.name, "cat"])
                    .args(&paths)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{out:?}");
                let text = String::from_utf8(out.stdout).unwrap();
                let lines: Vec<&str> = text.lines().collect();
                assert_eq!(lines.len(), KEYS.len(), "{text:?}");
                KEYS.iter()
                    .zip(lines)
                    .map(|((k, _), v)| (k.to_string(), format!("{v}\n")))
                    .collect()
            }
        }
    }

    fn state(&self) -> State {
        self.state_checked(false)
    }

    /// Kernel values, persisted file and the seqs in history.jsonl (complete lines: a torn
    /// last one is an append a crash cut short), without running sysprof.
    fn quick(&self) -> (Vec<(String, String)>, Option<String>, Vec<u64>) {
        let history =
            std::fs::read_to_string(self.sb.state().join("history.jsonl")).unwrap_or_default();
        let complete = history.rfind('\n').map_or(0, |i| i + 1);
        let seqs = history[..complete]
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        (
            self.kernel(),
            std::fs::read_to_string(self.sb.persisted()).ok(),
            seqs,
        )
    }

    fn journal(&self) -> PathBuf {
        self.sb.state().join("journal.json")
    }

    /// The state; `history` verifies every snapshot it lists (exit 6 otherwise). With `show`,
    /// each entry is also shown on its own and compared.
    fn state_checked(&self, show: bool) -> State {
        let history = self
            .sb
            .run(&["history", "--format", "json"])
            .expect(0)
            .json();
        let entries = history["entries"].as_array().unwrap();
        let seq_of = |id: &str| {
            entries
                .iter()
                .find(|e| e["id"] == id)
                .map(|e| e["seq"].as_u64().unwrap())
        };
        let mut normalised = Vec::new();
        for e in entries {
            let id = e["id"].as_str().unwrap();
            assert!(
                self.sb
                    .state()
                    .join("records")
                    .join(format!("{id}.json"))
                    .is_file(),
                "history names {id} but records/ lacks it"
            );
            if show {
                let shown = self
                    .sb
                    .run(&["show", id, "--format", "json"])
                    .expect(0)
                    .json();
                assert_eq!(
                    shown["record"], e["record"],
                    "show {id} disagrees with history"
                );
            }
            let r = &e["record"];
            let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
            normalised.push(Entry {
                seq: e["seq"].as_u64().unwrap(),
                kind: r["kind"].as_str().unwrap().to_owned(),
                changes: r["changes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| {
                        (
                            text(&c["key"]).unwrap(),
                            text(&c["before"]).unwrap(),
                            text(&c["after"]).unwrap(),
                        )
                    })
                    .collect(),
                persist: r["persist"]
                    .as_object()
                    .map(|p| (text(&p["before"]), text(&p["after"]))),
                restores: r["restores"].as_str().map(|id| seq_of(id).unwrap()),
                in_effect: e["in_effect"].as_bool().unwrap(),
            });
        }
        State {
            kernel: self.kernel(),
            persisted: std::fs::read_to_string(self.sb.persisted()).ok(),
            history: normalised,
        }
    }

    fn run_op(&self, op: Op, profile: &str, env: &[(&str, &str)]) -> common::Run {
        match op {
            Op::Apply => self.sb.run_env(&["apply", profile], env),
            Op::Rollback => self.sb.run_env(&["rollback"], env),
        }
    }
}

#[derive(Default, Debug)]
struct Tally {
    points: usize,
    old: usize,
    new: usize,
}

/// Enumerates the fault points of `op`, then crashes a fresh sandbox at each one in turn.
fn crash_matrix(env: Env, op: Op, profile: &str) -> Option<Tally> {
    // Reference run: the old state, the points reached, the new state.
    let reference = Case::new(env)?;
    if op == Op::Rollback {
        reference.sb.run(&["apply", profile]).expect(0);
    }
    let old = reference.state_checked(true);
    let log = reference.sb.dir.path().join("fault.log");
    reference
        .run_op(op, profile, &[("SYSPROF_FAULT_LOG", log.to_str().unwrap())])
        .expect(0);
    let new = reference.state_checked(true);
    assert_ne!(old, new, "{op:?} must change something");
    assert!(!reference.journal().exists());
    let points: Vec<String> = std::fs::read_to_string(&log)
        .expect("SYSPROF_FAULT_LOG lists the points reached")
        .lines()
        .map(str::to_owned)
        .collect();
    for expected in [
        "before-rename(record):1",
        "after-rename(record):1",
        "before-rename(journal.json):1",
        "after-rename(journal.json):1",
        "after-snapshot:1",
        "after-write:4",
        "after-readback:4",
    ] {
        assert!(
            points.iter().any(|p| p == expected),
            "{op:?}: no point {expected} in {points:?}"
        );
    }
    // The history: created by the first commit of a state dir (apply here), appended to after.
    let history = match op {
        Op::Apply => [
            "before-rename(history.jsonl):1",
            "after-rename(history.jsonl):1",
        ]
        .as_slice(),
        Op::Rollback => &[
            "before-append(history.jsonl):1",
            "mid-append(history.jsonl):1",
            "after-append(history.jsonl):1",
        ],
    };
    for expected in history {
        assert!(
            points.iter().any(|p| p == expected),
            "{op:?}: no point {expected} in {points:?}"
        );
    }
    assert!(
        !points.iter().any(|p| p == "before-rename(journal.json):2"),
        "the journal is written once (intent): {points:?}"
    );
    assert!(
        !points.iter().any(|p| p == "after-write:5"),
        "4 keys, 4 writes: {points:?}"
    );
    if op == Op::Apply {
        assert!(
            points
                .iter()
                .any(|p| p == "after-rename(99-sysprof.conf):1"),
            "{points:?}"
        );
    }
    let mut unique = points.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), points.len(), "points are counted: {points:?}");

    let mut tally = Tally::default();
    let mut outcomes = Vec::new();
    for point in &points {
        let case = Case::new(env).expect("a sandbox like the reference one");
        if op == Op::Rollback {
            case.sb.run(&["apply", profile]).expect(0);
        }
        let (kernel, persisted, _) = case.quick();
        assert_eq!(
            (&kernel, &persisted),
            (&old.kernel, &old.persisted),
            "{point}: a fresh sandbox starts from the old state"
        );

        let crashed = case.run_op(op, profile, &[("SYSPROF_FAULT", point)]);
        assert_eq!(
            crashed.code, -1,
            "{point}: the process must abort there\n{}",
            crashed.stderr
        );

        // The next command reports the unfinished change exactly when a journal was left.
        let journal = std::fs::read(case.journal())
            .ok()
            .map(|b| serde_json::from_slice::<serde_json::Value>(&b).unwrap());
        let status = case.sb.run(&["status"]).expect(0);
        match &journal {
            Some(j) => {
                let phase = match j["phase"].as_str().unwrap() {
                    "intent" => "Intent",
                    "written" => "Written",
                    "persisted" => "Persisted",
                    other => panic!("{point}: phase {other}"),
                };
                let id = &j["id"].as_str().unwrap()[..12];
                let line = format!("UNFINISHED change {id} (phase {phase})");
                assert!(status.stdout.contains(&line), "{point}: {}", status.stdout);
            }
            None => assert!(
                status.stdout.contains("no unfinished change"),
                "{point}: {}",
                status.stdout
            ),
        }

        let recovered = case
            .sb
            .run(&["recover", "--format", "json"])
            .expect(0)
            .json();
        let how = recovered["recovered"].as_str().unwrap().to_owned();
        assert_eq!(
            how == "nothing",
            journal.is_none(),
            "{point}: recover said {how}"
        );
        assert!(
            !case.journal().exists(),
            "{point}: recover must drop the journal"
        );

        let state = case.state();
        let is_new = if state == old {
            tally.old += 1;
            false
        } else if state == new {
            tally.new += 1;
            true
        } else {
            panic!(
                "{env:?} {op:?} crash at {point}: a mix of old and new\n--- got\n{state:#?}\n--- old\n{old:#?}\n--- new\n{new:#?}"
            );
        };
        match how.as_str() {
            "rolled_back" => assert!(!is_new, "{point}: undone yet new"),
            "completed" => assert!(is_new, "{point}: completed yet old"),
            _ => {}
        }
        outcomes.push((point.clone(), is_new));

        // The tool carries on from where recovery left the host.
        let new_seqs: Vec<u64> = new.history.iter().map(|e| e.seq).collect();
        let expect_new = (new.kernel.clone(), new.persisted.clone(), new_seqs);
        match (op, is_new) {
            (Op::Apply, _) => {
                case.sb.run(&["apply", profile]).expect(0);
                assert_eq!(case.quick(), expect_new, "{point}: apply after recovery");
            }
            (Op::Rollback, false) => {
                case.sb.run(&["rollback"]).expect(0);
                assert_eq!(case.quick(), expect_new, "{point}: rollback after recovery");
            }
            (Op::Rollback, true) => {
                let run = case.sb.run(&["rollback"]).expect(6);
                assert!(
                    run.stderr.contains("nothing to roll back"),
                    "{}",
                    run.stderr
                );
                assert_eq!(case.quick(), expect_new, "{point}");
            }
        }
        tally.points += 1;
    }

    // The outcome flips once, at the commit point: old before it, new from it on.
    let flips = outcomes.windows(2).filter(|w| w[0].1 != w[1].1).count();
    assert!(
        !outcomes[0].1,
        "crashing at the first point must leave the old state: {outcomes:?}"
    );
    assert!(
        outcomes.last().unwrap().1,
        "crashing at the last point must leave the new state: {outcomes:?}"
    );
    assert_eq!(flips, 1, "old then new, never back: {outcomes:?}");
    Some(tally)
}

fn matrix(env: Env) {
    let dir = tempfile::tempdir().unwrap();
    // One profile path for every sandbox, so the persisted file's text is the same everywhere.
    let profile = dir.path().join("crashy.yaml");
    std::fs::write(&profile, PROFILE).unwrap();
    let profile = profile.to_str().unwrap();
    let Some(apply) = crash_matrix(env, Op::Apply, profile) else {
        return;
    };
    let rollback = crash_matrix(env, Op::Rollback, profile).unwrap();
    println!(
        "[{env:?}] apply: crash points exercised: {}, recovered to old: {}, recovered to new: {}",
        apply.points, apply.old, apply.new
    );
    println!(
        "[{env:?}] rollback: crash points exercised: {}, recovered to old: {}, recovered to new: {}",
        rollback.points, rollback.old, rollback.new
    );
    println!(
        "[{env:?}] crash points exercised: {}, recovered to old: {}, recovered to new: {}",
        apply.points + rollback.points,
        apply.old + rollback.old,
        apply.new + rollback.new
    );
    // 17 and 15: record and journal (2 points each), 4 writes and read-backs, persisted file
    // (apply), history, and nothing else since the journal is written once (`intent`).
    assert!(
        apply.points >= 17 && rollback.points >= 15,
        "{apply:?} {rollback:?}"
    );
}

#[test]
fn every_crash_point_recovers_to_old_or_new_on_a_fake_tree() {
    matrix(Env::Fake);
}

#[test]
fn every_crash_point_recovers_to_old_or_new_in_a_network_namespace() {
    matrix(Env::Netns);
}

/// Waits for `cond`, failing if `child` exits first or the deadline passes.
fn wait_for(child: &mut std::process::Child, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("sysprof exited ({status}) before {what}: {stderr}");
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Kills and reaps the child if the test fails while it runs.
struct Reaper(std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn kill_9_while_a_write_blocks_is_undone_by_recover() {
    let sb = Sandbox::fake(&[KEYS[0], KEYS[1], KEYS[3]]);
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("crashy.yaml");
    std::fs::write(&profile, PROFILE).unwrap();
    let profile = profile.to_str().unwrap();

    // tcp_keepalive_time, the third key written, is a FIFO: the plan's read gets "7200" from a
    // feeder thread; the write then opens it O_WRONLY and blocks, as no one reads.
    let fifo = sb.root().join(rel("net.ipv4.tcp_keepalive_time"));
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let feeder = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let open = OpenOptions::new()
                    .write(true)
                    .custom_flags(nix::libc::O_NONBLOCK)
                    .open(&fifo);
                match open {
                    Ok(mut f) => return f.write_all(b"7200\n").is_ok(),
                    Err(e)
                        if e.raw_os_error() == Some(nix::libc::ENXIO)
                            && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(2))
                    }
                    Err(_) => return false,
                }
            }
        })
    };

    let mut child = Reaper(
        Command::new(bin())
            .args(&sb.args)
            .args(["apply", profile])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;
    let journal = sb.state().join("journal.json");
    wait_for(child, "the journal and the first two writes", || {
        journal.exists()
            && sb.fake_value("net.ipv4.tcp_fin_timeout") == "30\n"
            && sb.fake_value("net.ipv4.ip_local_port_range") == "10000\t59999\n"
    });
    assert!(feeder.join().unwrap(), "the plan read the FIFO once");
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the write must block on the FIFO"
    );

    // Meanwhile: status names the unfinished change and the holder; a second apply is refused.
    let status = sb.run(&["status", "--format", "json"]).expect(0).json();
    assert_eq!(status["unfinished"]["phase"], "intent", "{status}");
    assert_eq!(status["lock_holder"], child.id(), "{status}");
    let refused = sb.run(&["--lock-timeout", "0", "apply", profile]).expect(6);
    assert!(
        refused
            .stderr
            .contains(&format!("held by pid {}", child.id())),
        "{}",
        refused.stderr
    );

    child.kill().unwrap(); // SIGKILL
    let killed = child.wait().unwrap();
    assert_eq!(killed.signal(), Some(9), "{killed:?}");
    assert!(journal.exists(), "kill -9 leaves the journal");
    assert_eq!(
        sb.fake_value("net.ipv4.tcp_fin_timeout"),
        "30\n",
        "partially applied"
    );

    // The key becomes a plain file again holding its old value; recovery undoes the rest.
    std::fs::remove_file(&fifo).unwrap();
    std::fs::write(&fifo, "7200\n").unwrap();
    let status = sb.run(&["status"]).expect(0);
    assert!(
        status.stdout.contains("UNFINISHED change"),
        "{}",
        status.stdout
    );
    let recovered = sb.run(&["recover", "--format", "json"]).expect(0).json();
    assert_eq!(recovered["recovered"], "rolled_back", "{recovered}");
    for (key, value) in KEYS {
        assert_eq!(sb.fake_value(key), format!("{value}\n"), "{key} restored");
    }
    assert!(!journal.exists(), "journal gone after recover");
    assert!(!sb.persisted().exists(), "nothing persisted");
    let history = sb.run(&["history", "--format", "json"]).expect(0).json();
    assert_eq!(history["entries"], serde_json::json!([]), "{history}");
    let records: Vec<_> = std::fs::read_dir(sb.state().join("records"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .collect();
    assert!(
        records.is_empty(),
        "the abandoned snapshot is removed: {records:?}"
    );

    // And the host can be changed again.
    sb.run(&["apply", profile]).expect(0);
    assert_eq!(sb.fake_value("net.ipv4.tcp_keepalive_time"), "600\n");
    assert_eq!(sb.fake_value("net.ipv4.tcp_syn_retries"), "3\n");
}
