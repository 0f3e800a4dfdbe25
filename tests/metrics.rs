//! `sysprof metrics`: the exposition is parsed by a real Prometheus text parser
//! (prometheus_client from PyPI, installed into a venv here, through `tests/prom_parse.py`) and
//! its values checked after real applies and rollbacks in a fake tree, with drift, a pending
//! confirmation, an unfinished change, a held lock, health gates on a fake /proc/net, and a
//! corrupt history. `--textfile` replaces the file by rename and leaves nothing else behind;
//! nothing in the state dir changes.
//!
//! Without PyPI the test fails under SYSPROF_REQUIRE_NETNS=1 (CI), and says loudly that it did
//! not run otherwise.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Run, Sandbox, repo, snapshot_dir};
use serde_json::Value as Json;
use sysprof::error::exit;

/// What pip installs: the parser Prometheus' own Python client uses.
const PROMETHEUS_CLIENT: &str = "prometheus_client>=0.17,<0.27";

/// The venv's python, with prometheus_client.
fn python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let venv = common::pip_venv(
                "sysprof-prometheus-client-venv-0.17-0.27",
                PROMETHEUS_CLIENT,
                "import prometheus_client.parser",
            )?;
            Some(venv.join("bin/python"))
        })
        .clone()
}

/// The families prometheus_client parsed, by name.
struct Parsed(BTreeMap<String, Json>);

impl Parsed {
    fn from(python: &PathBuf, text: &str) -> Self {
        let mut child = Command::new(python)
            .arg(repo().join("tests/prom_parse.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "prometheus_client refused the exposition: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let families: Vec<Json> = serde_json::from_slice(&out.stdout).unwrap();
        let count = families.len();
        let by_name = families
            .into_iter()
            .map(|f| (f["name"].as_str().unwrap().to_owned(), f));
        let parsed = Parsed(by_name.collect());
        assert_eq!(parsed.0.len(), count, "a family written twice:\n{text}");
        for (name, family) in &parsed.0 {
            assert_eq!(family["type"], "gauge", "{name}");
            assert!(
                !family["help"].as_str().unwrap().is_empty(),
                "{name} has no HELP"
            );
        }
        parsed
    }

    fn samples(&self, name: &str) -> Vec<Json> {
        self.0
            .get(name)
            .map_or_else(Vec::new, |f| f["samples"].as_array().unwrap().clone())
    }

    /// The value of the only sample of a family (panics when absent).
    fn value(&self, name: &str) -> f64 {
        let samples = self.samples(name);
        assert_eq!(samples.len(), 1, "{name}: {samples:?}");
        samples[0]["value"].as_f64().unwrap()
    }

    /// The value of the sample whose labels include `labels`.
    fn labelled(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matches = |s: &Json| labels.iter().all(|(k, v)| s["labels"][k] == *v);
        self.samples(name)
            .into_iter()
            .find(matches)
            .map(|s| s["value"].as_f64().unwrap())
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Runs `metrics` with `args`, checks the exit code, parses stdout.
fn metrics(sb: &Sandbox, python: &PathBuf, args: &[&str], code: i32) -> (Parsed, Run) {
    let run = sb.run(&[&["metrics"], args].concat());
    assert_eq!(run.code, code, "{}\n{}", run.stdout, run.stderr);
    (Parsed::from(python, &run.stdout), run)
}

fn last_history_id(sb: &Sandbox) -> String {
    let history = sb.run(&["history", "--format", "json"]).expect(0).json();
    let entries = history["entries"].as_array().unwrap();
    entries.last().unwrap()["id"].as_str().unwrap()[..12].to_owned()
}

const KEYS: &[(&str, &str)] = &[
    ("net.ipv4.tcp_fin_timeout", "60"),
    ("net.core.somaxconn", "4096"),
    ("net.ipv4.tcp_keepalive_time", "7200"),
];

/// A profile name with everything a label value must escape: quote, backslash, newline.
const WEIRD: &str = "we\"b\\1\nx";

#[test]
fn metrics_follow_applies_rollbacks_drift_and_confirmations() {
    let Some(py) = python() else { return };
    let sb = Sandbox::fake(KEYS);
    let (m, _) = metrics(&sb, &py, &[], exit::OK);
    assert_eq!(m.value("sysprof_history_entries"), 0.0);
    assert!(!m.has("sysprof_last_change_info") && !m.has("sysprof_last_change_timestamp_seconds"));
    assert_eq!(
        m.labelled(
            "sysprof_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert!((m.value("sysprof_metrics_timestamp_seconds") - now()).abs() < 60.0);
    assert!(!sb.state().exists(), "metrics creates no state dir");

    let p = sb.file("web.yaml", "version: 1\nname: \"we\\\"b\\\\1\\nx\"\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n  net.core.somaxconn: 8192\n");
    let before = now();
    sb.run(&["apply", p.to_str().unwrap()]).expect(0);
    let (m, _) = metrics(&sb, &py, &[], exit::OK);
    assert_eq!(m.value("sysprof_history_entries"), 1.0);
    let id = last_history_id(&sb);
    let info = [("profile", WEIRD), ("id", id.as_str()), ("kind", "apply")];
    assert_eq!(
        m.labelled("sysprof_last_change_info", &info),
        Some(1.0),
        "{:?}",
        m.samples("sysprof_last_change_info")
    );
    let at = m.value("sysprof_last_change_timestamp_seconds");
    assert!(
        at >= before.floor() - 1.0 && at <= now() + 1.0,
        "{at} vs {before}"
    );
    assert_eq!(m.value("sysprof_last_change_keys"), 2.0);
    assert_eq!(m.value("sysprof_managed_keys"), 2.0);
    assert_eq!(m.value("sysprof_drift_keys"), 0.0);
    assert!(!m.has("sysprof_drifted_key"));
    for flag in [
        "sysprof_unfinished_change",
        "sysprof_lock_held",
        "sysprof_pending_confirm",
    ] {
        assert_eq!(m.value(flag), 0.0, "{flag}");
    }

    // Another writer changes a key sysprof set.
    common::write_key(&sb.root(), "net.core.somaxconn", "1024");
    let (m, _) = metrics(&sb, &py, &[], exit::OK);
    assert_eq!(m.value("sysprof_drift_keys"), 1.0);
    assert_eq!(
        m.labelled("sysprof_drifted_key", &[("key", "net.core.somaxconn")]),
        Some(1.0)
    );

    // The drifted key is overwritten only when asked (`--force`).
    sb.run(&["rollback"]).expect(exit::STATE);
    sb.run(&["rollback", "--force"]).expect(0);
    let (m, _) = metrics(&sb, &py, &[], exit::OK);
    assert_eq!(m.value("sysprof_history_entries"), 2.0);
    let id = last_history_id(&sb);
    let info = [
        ("profile", WEIRD),
        ("id", id.as_str()),
        ("kind", "rollback"),
    ];
    assert_eq!(m.labelled("sysprof_last_change_info", &info), Some(1.0));
    assert_eq!(
        m.value("sysprof_drift_keys"),
        0.0,
        "the rollback set both keys again"
    );

    let q = sb.file(
        "q.yaml",
        "version: 1\nname: keepalive\nsysctls:\n  net.ipv4.tcp_keepalive_time: 600\n",
    );
    let applied = now();
    sb.run(&[
        "apply",
        q.to_str().unwrap(),
        "--confirm-within",
        "120s",
        "--watcher",
        "fork",
    ])
    .expect(0);
    let (m, _) = metrics(&sb, &py, &[], exit::OK);
    assert_eq!(m.value("sysprof_pending_confirm"), 1.0);
    let deadline = m.labelled(
        "sysprof_pending_confirm_deadline_seconds",
        &[("profile", "keepalive"), ("mode", "confirm")],
    );
    let deadline = deadline.expect("a deadline for the pending change");
    assert!(
        deadline >= applied + 119.0 && deadline <= now() + 121.0,
        "{deadline} vs {applied}"
    );
    assert_eq!(m.value("sysprof_pending_confirm_overdue"), 0.0);
    assert_eq!(m.value("sysprof_pending_watcher_running"), 1.0);
    sb.run(&["confirm"]).expect(0);
    let (m, _) = metrics(&sb, &py, &[], exit::OK);
    assert_eq!(m.value("sysprof_pending_confirm"), 0.0);
    assert!(!m.has("sysprof_pending_confirm_deadline_seconds"));
    let id = last_history_id(&sb);
    let info = [
        ("profile", "keepalive"),
        ("id", id.as_str()),
        ("kind", "apply"),
    ];
    assert_eq!(
        m.labelled("sysprof_last_change_info", &info),
        Some(1.0),
        "the confirmation's record"
    );
    assert_eq!(
        m.value("sysprof_managed_keys"),
        1.0,
        "the first profile's keys were rolled back: only keepalive's key is held"
    );
}

#[test]
fn metrics_are_read_only_even_with_a_change_in_flight_and_the_lock_held() {
    let Some(py) = python() else { return };
    let sb = Sandbox::fake(KEYS);
    let p = sb.file(
        "p.yaml",
        "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n",
    );
    sb.run(&["apply", p.to_str().unwrap()]).expect(0);
    // A change interrupted after its record was written: the journal names an unknown record.
    let journal = format!("{{\"id\":\"{}\",\"phase\":\"intent\"}}", "ab".repeat(32));
    std::fs::write(sb.state().join("journal.json"), journal).unwrap();
    // Another process holds the state lock and names itself, as a change in progress does.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(sb.state().join("lock"))
        .unwrap();
    let mut held =
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
    writeln!(held, "{}", std::process::id()).unwrap();
    let before = snapshot_dir(&sb.state());

    let (m, run) = metrics(&sb, &py, &["--lock-timeout", "0"], exit::OK);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert_eq!(m.value("sysprof_unfinished_change"), 1.0);
    assert_eq!(m.value("sysprof_lock_held"), 1.0);
    assert_eq!(m.value("sysprof_history_entries"), 1.0);
    assert_eq!(
        snapshot_dir(&sb.state()),
        before,
        "nothing in the state dir changed"
    );
    drop(held);
    let status = sb.run(&["status", "--format", "json"]).expect(0).json();
    assert!(
        !status["unfinished"].is_null(),
        "the journal is still there for recover: {status}"
    );

    // A history that cannot be read: reported, and the other metrics are still there.
    std::fs::write(sb.state().join("history.jsonl"), "not json\n").unwrap();
    let (m, run) = metrics(&sb, &py, &[], exit::STATE);
    assert!(run.stderr.contains("is corrupt"), "{}", run.stderr);
    assert_eq!(
        m.labelled("sysprof_state_read_error", &[("source", "history")]),
        Some(1.0)
    );
    assert_eq!(
        m.labelled("sysprof_state_read_error", &[("source", "journal")]),
        Some(0.0)
    );
    assert!(!m.has("sysprof_history_entries") && !m.has("sysprof_drift_keys"));
    assert_eq!(m.value("sysprof_unfinished_change"), 1.0);
}

#[test]
fn health_gates_of_a_profile_are_judged_once() {
    let Some(py) = python() else { return };
    let sb = Sandbox::fake(KEYS);
    let net = sb.dir.path().join("net");
    std::fs::create_dir_all(&net).unwrap();
    std::fs::write(
        net.join("netstat"),
        "TcpExt: ListenOverflows PAWSEstab\nTcpExt: 7 0\n",
    )
    .unwrap();
    let p = sb.file(
        "gated.yaml",
        "version: 1\nname: gated\nsysctls: {}\nhealth:\n  gates:\n    TcpExt.ListenOverflows: {max: 5}\n    TcpExt.PAWSEstab: {max_increase: 0}\n    TcpExt.NoSuchCounter: {max: 1}\n",
    );
    let args = [
        "--profile",
        p.to_str().unwrap(),
        "--proc-net",
        net.to_str().unwrap(),
        "--over",
        "100ms",
    ];
    let (m, _) = metrics(&sb, &py, &args, exit::OK);
    let gate = |name: &str, gate: &str, limit: &str| {
        m.labelled(
            name,
            &[("profile", "gated"), ("gate", gate), ("limit", limit)],
        )
    };
    assert_eq!(
        gate("sysprof_health_gate_value", "TcpExt.ListenOverflows", "max"),
        Some(7.0)
    );
    assert_eq!(
        gate(
            "sysprof_health_gate_threshold",
            "TcpExt.ListenOverflows",
            "max"
        ),
        Some(5.0)
    );
    assert_eq!(
        gate(
            "sysprof_health_gate_tripped",
            "TcpExt.ListenOverflows",
            "max"
        ),
        Some(1.0)
    );
    assert_eq!(
        gate(
            "sysprof_health_gate_value",
            "TcpExt.PAWSEstab",
            "max_increase"
        ),
        Some(0.0)
    );
    assert_eq!(
        gate(
            "sysprof_health_gate_tripped",
            "TcpExt.PAWSEstab",
            "max_increase"
        ),
        Some(0.0)
    );
    assert_eq!(
        gate("sysprof_health_gate_missing", "TcpExt.NoSuchCounter", "max"),
        Some(1.0)
    );
    assert_eq!(
        gate("sysprof_health_gate_value", "TcpExt.NoSuchCounter", "max"),
        None
    );

    let ungated = sb.file("plain.yaml", "version: 1\nsysctls: {}\n");
    let run = sb.run(&["metrics", "--profile", ungated.to_str().unwrap()]);
    assert_eq!(run.code, exit::INVALID_INPUT, "{}", run.stderr);
    assert!(run.stderr.contains("has no health gates"), "{}", run.stderr);
}

#[test]
fn the_textfile_is_replaced_by_rename_and_world_readable() {
    let Some(py) = python() else { return };
    let sb = Sandbox::fake(KEYS);
    let dir = sb.dir.path().join("textfile");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sysprof.prom");
    let run = sb
        .run(&["metrics", "--textfile", dir.to_str().unwrap()])
        .expect(0);
    assert!(run.stdout.is_empty(), "quiet for cron: {}", run.stdout);
    let first = std::fs::metadata(&file).unwrap();
    assert_eq!(first.permissions().mode() & 0o777, 0o644);
    let m = Parsed::from(&py, &std::fs::read_to_string(&file).unwrap());
    assert_eq!(m.value("sysprof_history_entries"), 0.0);

    let p = sb.file(
        "p.yaml",
        "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n",
    );
    sb.run(&["apply", p.to_str().unwrap()]).expect(0);
    sb.run(&["metrics", "--textfile", dir.to_str().unwrap()])
        .expect(0);
    let second = std::fs::metadata(&file).unwrap();
    assert_ne!(
        first.ino(),
        second.ino(),
        "a new file renamed over the old one"
    );
    let m = Parsed::from(&py, &std::fs::read_to_string(&file).unwrap());
    assert_eq!(m.value("sysprof_history_entries"), 1.0);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["sysprof.prom"], "no temp file left behind");

    let json = sb
        .run(&[
            "metrics",
            "--format",
            "json",
            "--textfile",
            dir.to_str().unwrap(),
        ])
        .expect(0)
        .json();
    assert_eq!(json["textfile"], file.display().to_string());
    let families = json["families"].as_array().unwrap();
    assert!(families.iter().any(|f| f["name"] == "sysprof_drift_keys"));

    let missing = sb.run(&[
        "metrics",
        "--textfile",
        sb.dir.path().join("nope").to_str().unwrap(),
    ]);
    assert_eq!(missing.code, exit::FAILURE, "{}", missing.stderr);
}

/// Every family `metrics` writes, from a host with drift, a pending confirmation and gates.
fn every_family(sb: &Sandbox) -> Vec<String> {
    let p = sb.file("web.yaml", "version: 1\nname: web\nsysctls:\n  net.core.somaxconn: 8192\nhealth:\n  gates:\n    TcpExt.ListenOverflows: {max: 0}\n");
    sb.run(&["apply", p.to_str().unwrap()]).expect(0);
    common::write_key(&sb.root(), "net.core.somaxconn", "1024");
    let q = sb.file(
        "q.yaml",
        "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n",
    );
    // --keep-released: web's key stays held (and drifted) while q awaits confirmation.
    let confirm = [
        "--confirm-within",
        "120s",
        "--watcher",
        "fork",
        "--keep-released",
    ];
    sb.run(&[&["apply", q.to_str().unwrap()], &confirm[..]].concat())
        .expect(0);
    let net = sb.dir.path().join("net");
    std::fs::create_dir_all(&net).unwrap();
    std::fs::write(net.join("netstat"), "TcpExt: ListenOverflows\nTcpExt: 0\n").unwrap();
    let gates = [
        "--profile",
        p.to_str().unwrap(),
        "--proc-net",
        net.to_str().unwrap(),
    ];
    let json = sb
        .run(
            &[
                &["metrics", "--format", "json", "--over", "10ms"],
                &gates[..],
            ]
            .concat(),
        )
        .expect(0)
        .json();
    sb.run(&["confirm"]).expect(0);
    let families = json["families"].as_array().unwrap();
    families
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

/// `sysprof_…` names in a text.
fn metric_names(text: &str) -> Vec<String> {
    let is_name = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    text.match_indices("sysprof_")
        .map(|(i, _)| text[i..].chars().take_while(|c| is_name(*c)).collect())
        .collect()
}

/// The command of an `ExecStart=` or cron.d line, the binary and textfile dir replaced.
fn example_command(words: &[&str], textfile: &std::path::Path) -> Command {
    let bin = words
        .iter()
        .position(|w| w.ends_with("/sysprof"))
        .expect("names sysprof");
    let mut cmd = Command::new(common::bin());
    for w in &words[bin + 1..] {
        match w.starts_with("/var/lib/prometheus") {
            true => cmd.arg(textfile),
            false => cmd.arg(w),
        };
    }
    cmd
}

#[test]
fn the_monitoring_examples_run_and_use_metrics_sysprof_writes() {
    let sb = Sandbox::fake(KEYS);
    let written = every_family(&sb);
    let examples = repo().join("examples/monitoring");
    let read = |name: &str| std::fs::read_to_string(examples.join(name)).unwrap();
    for name in metric_names(&read("alerts.yml")) {
        assert!(
            written.contains(&name),
            "alerts.yml uses {name}, which sysprof never writes"
        );
    }
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for name in &written {
        assert!(
            readme.contains(&format!("`{name}")),
            "README.md does not list {name}"
        );
    }

    let service = read("sysprof-metrics.service");
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let cron = read("sysprof-metrics.cron");
    let cron_line = cron
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
        .unwrap();
    let cron_words: Vec<&str> = cron_line.split_whitespace().collect();
    assert_eq!(cron_words[5], "root", "cron.d lines name the user");
    for words in [exec.split_whitespace().collect::<Vec<_>>(), cron_words] {
        let dir = tempfile::tempdir().unwrap();
        let run = example_command(&words, dir.path())
            .env("SYSPROF_ROOT", sb.root())
            .env("SYSPROF_STATE_DIR", sb.state())
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{words:?}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let text = std::fs::read_to_string(dir.path().join("sysprof.prom")).unwrap();
        assert!(text.contains("sysprof_drift_keys 1"), "{text}");
    }
    common::verify_units(
        &examples,
        &["sysprof-metrics.service", "sysprof-metrics.timer"],
    );
}
