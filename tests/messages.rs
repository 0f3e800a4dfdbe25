//! Exact output of the messages users read most, so that rewording one is a visible decision.
//!
//! Each case runs the real binary in a sandbox (fake sysctl tree, private state and sysctl.d
//! dirs) and compares exit code, stdout and stderr with `tests/snapshots/NAME.txt`, after
//! replacing what differs between runs: the sandbox path (`$DIR`), record ids (`<id>`) and
//! times (`<time>`). `SYSPROF_BLESS=1 cargo test --test messages` rewrites the snapshots; review
//! the diff before committing it.

mod common;

use std::path::{Path, PathBuf};

use common::Sandbox;

/// One case: files to create, commands to run first, then the command whose output is checked.
struct Case {
    name: &'static str,
    sandbox: Sandbox,
    setup: Vec<Vec<String>>,
}

impl Case {
    fn new(name: &'static str, keys: &[(&str, &str)]) -> Self {
        Self {
            name,
            sandbox: Sandbox::fake(keys),
            setup: Vec::new(),
        }
    }

    /// Writes a file into the sandbox (`$DIR/NAME`).
    fn file(self, name: &str, text: &str) -> Self {
        let path = self.sandbox.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    /// Runs a command before the checked one (its success is asserted).
    fn given(mut self, args: &[&str]) -> Self {
        self.setup
            .push(args.iter().map(|a| a.to_string()).collect());
        self
    }

    /// Runs `args` and compares with the snapshot.
    fn check(self, args: &[&str]) {
        let dir = self.sandbox.dir.path().to_owned();
        let with_dir = |args: &[String]| -> Vec<String> {
            args.iter()
                .map(|a| a.replace("$DIR", &dir.display().to_string()))
                .collect()
        };
        for step in &self.setup {
            let args = with_dir(step);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = self.sandbox.run(&refs);
            assert!(
                run.code == 0 || run.code == 2,
                "setup {step:?}: {}",
                run.stderr
            );
        }
        let args = with_dir(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = self.sandbox.run(&refs);
        let shown = format!(
            "$ sysprof {}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            run.code,
            run.stdout,
            run.stderr
        );
        compare(self.name, &normalize(&shown, &dir));
    }
}

/// Replaces the sandbox path, record ids and times with placeholders.
fn normalize(text: &str, dir: &Path) -> String {
    unix_times(&ids_and_times(text, dir))
}

/// The value of a `sysprof_…_timestamp_seconds` / `…_deadline_seconds` metric sample.
fn unix_times(text: &str) -> String {
    let lines = text.split_inclusive('\n').map(|line| {
        let name = line.split(['{', ' ']).next().unwrap_or("");
        let timed = name.starts_with("sysprof_")
            && (name.ends_with("timestamp_seconds") || name.ends_with("deadline_seconds"));
        match (timed, line.rsplit_once(' ')) {
            (true, Some((head, _))) => format!("{head} <time>\n"),
            _ => line.to_owned(),
        }
    });
    lines.collect()
}

/// Replaces the sandbox path, record ids and RFC 3339 times with placeholders.
fn ids_and_times(text: &str, dir: &Path) -> String {
    let text = text.replace(&dir.display().to_string(), "$DIR");
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let rest = &text[i..];
        if let Some(len) = timestamp_len(rest) {
            out.push_str("<time>");
            skip(&mut chars, len - 1);
            continue;
        }
        let boundary = i == 0 || !text[..i].ends_with(|c: char| c.is_ascii_alphanumeric());
        let hex = rest.chars().take_while(|c| c.is_ascii_hexdigit()).count();
        let ends = !rest[hex..].starts_with(|c: char| c.is_ascii_alphanumeric());
        if boundary && ends && (hex == 12 || hex == 64) {
            out.push_str("<id>");
            skip(&mut chars, hex - 1);
            continue;
        }
        out.push(c);
    }
    out
}

fn skip(chars: &mut std::iter::Peekable<std::str::CharIndices>, n: usize) {
    for _ in 0..n {
        chars.next();
    }
}

/// `2026-11-29T14:56:04Z`: 20 characters.
fn timestamp_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let shape = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z';
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    (shape && digits.iter().all(|&i| b[i].is_ascii_digit())).then_some(20)
}

fn snapshot(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"))
}

fn compare(name: &str, actual: &str) {
    let path = snapshot(name);
    if std::env::var("SYSPROF_BLESS").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {} (SYSPROF_BLESS=1 writes it):\n{actual}",
            path.display()
        )
    });
    if expected != actual {
        let diff = similar::TextDiff::from_lines(&expected, actual)
            .unified_diff()
            .header("snapshot", "actual")
            .to_string();
        panic!("{name}: output changed (SYSPROF_BLESS=1 accepts it)\n{diff}");
    }
}

const TREE: &[(&str, &str)] = &[
    ("net.ipv4.tcp_fin_timeout", "60"),
    ("net.ipv4.tcp_tw_reuse", "2"),
    ("net.ipv4.tcp_syncookies", "1"),
    ("net.core.somaxconn", "4096"),
];

const GOOD: &str = "version: 1\nname: web\nsysctls:\n  net.ipv4.tcp_fin_timeout:\n    value: 30\n    reason: Reclaim orphaned FIN_WAIT2 sockets sooner.\n  net.core.somaxconn: 8192\n";

#[test]
fn validate_reports() {
    Case::new("validate-valid", TREE)
        .file("web.yaml", GOOD)
        .check(&["validate", "$DIR/web.yaml"]);
    Case::new("validate-unknown-key", TREE)
        .file(
            "p.yaml",
            "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timout: 30\n",
        )
        .check(&["validate", "$DIR/p.yaml"]);
    Case::new("validate-out-of-bounds", TREE)
        .file(
            "p.yaml",
            "version: 1\nsysctls:\n  net.ipv4.tcp_tw_reuse: 7\n",
        )
        .check(&["validate", "$DIR/p.yaml"]);
    Case::new("validate-removed-key", TREE)
        .file(
            "p.yaml",
            "version: 1\ncontext: {nat: true}\nsysctls:\n  net.ipv4.tcp_tw_recycle: 1\n",
        )
        .check(&["--kernel", "6.1", "validate", "$DIR/p.yaml"]);
    Case::new("validate-json", TREE)
        .file(
            "p.yaml",
            "version: 1\nsysctls:\n  net.ipv4.tcp_tw_reuse: 7\n",
        )
        .check(&[
            "--kernel",
            "6.1",
            "--format",
            "json",
            "validate",
            "$DIR/p.yaml",
        ]);
}

#[test]
fn profile_load_errors() {
    Case::new("load-unknown-field", TREE)
        .file(
            "p.yaml",
            "version: 1\nsysctl:\n  net.ipv4.tcp_fin_timeout: 30\n",
        )
        .check(&["validate", "$DIR/p.yaml"]);
    Case::new("load-duplicate-key", TREE)
        .file("p.yaml", "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n  net/ipv4/tcp_fin_timeout: 20\n")
        .check(&["validate", "$DIR/p.yaml"]);
    Case::new("load-leading-zero", TREE)
        .file(
            "p.yaml",
            "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 030\n",
        )
        .check(&["validate", "$DIR/p.yaml"]);
    Case::new("load-extends-cycle", TREE)
        .file("a.yaml", "version: 1\nextends: [b.yaml]\nsysctls: {}\n")
        .file("b.yaml", "version: 1\nextends: [a.yaml]\nsysctls: {}\n")
        .check(&["validate", "$DIR/a.yaml"]);
    Case::new("load-missing-file", TREE).check(&["validate", "$DIR/nope.yaml"]);
    Case::new("load-not-yaml-parent", TREE)
        .file("secret", "root:$y$j9T$not-a-real-hash:19000:0:99999:7:::\n")
        .file("p.yaml", "version: 1\nextends: [secret]\nsysctls: {}\n")
        .check(&["validate", "$DIR/p.yaml"]);
}

#[test]
fn change_commands() {
    Case::new("diff", TREE)
        .file("web.yaml", GOOD)
        .check(&["diff", "$DIR/web.yaml"]);
    Case::new("apply", TREE)
        .file("web.yaml", GOOD)
        .check(&["apply", "$DIR/web.yaml"]);
    Case::new("apply-dry-run", TREE)
        .file("web.yaml", GOOD)
        .check(&["apply", "--dry-run", "$DIR/web.yaml"]);
    Case::new("apply-in-sync", TREE)
        .file("web.yaml", GOOD)
        .given(&["apply", "$DIR/web.yaml"])
        .check(&["apply", "$DIR/web.yaml"]);
    Case::new("apply-missing-key", TREE)
        .file(
            "p.yaml",
            "version: 1\nsysctls:\n  net.ipv4.tcp_fastopen: 3\n",
        )
        .check(&["apply", "$DIR/p.yaml"]);
    Case::new("rollback", TREE)
        .file("web.yaml", GOOD)
        .given(&["apply", "$DIR/web.yaml"])
        .check(&["rollback"]);
    Case::new("rollback-nothing", TREE).check(&["rollback"]);
    Case::new("history", TREE)
        .file("web.yaml", GOOD)
        .given(&["apply", "$DIR/web.yaml"])
        .given(&["rollback"])
        .check(&["history"]);
    Case::new("status-empty", TREE).check(&["status"]);
    Case::new("recover-nothing", TREE).check(&["recover"]);
    Case::new("confirm-nothing", TREE).check(&["confirm"]);
    Case::new("show-unknown", TREE).check(&["show", "abcdef12"]);
}

#[test]
fn adopt_and_explain() {
    Case::new("explain-key", TREE).check(&["explain", "net.ipv4.tcp_tw_reuse"]);
    Case::new("explain-rule", TREE).check(&["explain", "tw-recycle-nat"]);
    Case::new("explain-unknown", TREE).check(&["explain", "net.ipv4.tcp_fin_timout"]);
    Case::new("import", TREE)
        .file(
            "10-web.conf",
            "# web\nnet.ipv4.tcp_fin_timeout = 30\n-net.ipv4.tcp_gone = 1\n",
        )
        .check(&["import", "$DIR/10-web.conf"]);
    Case::new("import-malformed", TREE)
        .file(
            "bad.conf",
            "net.ipv4.tcp_fin_timeout = 30\nnot an assignment\n",
        )
        .check(&["import", "$DIR/bad.conf"]);
    Case::new("export-prefix", TREE).check(&["export", "--prefix", "net.ipv4"]);
    Case::new("k8s-pod-sysctls", TREE)
        .file("pod.yaml", "version: 1\nname: pod\ncontext: {kubernetes_pod: true}\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n  net.ipv4.ip_local_port_range: [10240, 65000]\n")
        .check(&["k8s", "pod-sysctls", "--k8s", "1.29", "$DIR/pod.yaml"]);
    Case::new("health-no-gates", TREE)
        .file("web.yaml", GOOD)
        .check(&["health", "$DIR/web.yaml"]);
    Case::new("rollout-plan", TREE)
        .file("r.yaml", "version: 1\nname: r\nsysctls: {}\nrollout:\n  stages:\n    - {name: canary, percent: 10, watch: 1m}\n    - {name: fleet, percent: 100}\n")
        .file("hosts.txt", "web1\nweb2\nweb3\nweb4\n")
        .check(&["rollout", "plan", "$DIR/r.yaml", "--hosts", "$DIR/hosts.txt"]);
    Case::new("doctor-empty-proc-net", TREE)
        .file("net/.keep", "")
        .check(&["doctor", "--proc-net", "$DIR/net"]);
}

#[test]
fn kubernetes_manifests() {
    let manifest = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: crawler\n  namespace: jobs\nspec:\n  template:\n    spec:\n      securityContext:\n        sysctls:\n          - name: net.ipv4.tcp_tw_reuse\n            value: \"1\"\n          - name: net.ipv4.ip_local_port_range\n            value: 1024\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: crawler\n";
    Case::new("k8s-check-errors", TREE)
        .file("deploy.yaml", manifest)
        .check(&[
            "k8s",
            "check",
            "--k8s",
            "1.29",
            "--kernel",
            "6.1",
            "$DIR/deploy.yaml",
        ]);
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: api\nspec:\n  securityContext:\n    sysctls:\n      - name: net.ipv4.ip_local_port_range\n        value: \"10240 65535\"\n      - name: net.core.somaxconn\n        value: \"4096\"\n  containers:\n    - name: api\n      image: api:1\n";
    Case::new("k8s-check-valid", TREE)
        .file("pod.yaml", pod)
        .check(&[
            "k8s",
            "check",
            "--k8s",
            "1.29",
            "--kernel",
            "6.1",
            "--allowed-unsafe",
            "net.core.*",
            "$DIR/pod.yaml",
        ]);
}

#[test]
fn monitoring() {
    Case::new("metrics", TREE)
        .file("web.yaml", GOOD)
        .given(&["apply", "$DIR/web.yaml"])
        .check(&["metrics"]);
}
