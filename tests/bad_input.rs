//! Malformed and hostile input through the real binary. Every case runs against a sandbox that
//! already holds an applied profile (so the state dir is not empty) and asserts the exit code,
//! a message naming the file:line:col and the key where there is one, and that nothing changed:
//! the fake tree, the sysctl.d dir and the state dir are byte-identical before and after (and in
//! a network namespace, the namespace's values).

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Netns, Run, Sandbox, bin, rel, repo, snapshot_dir};

const TREE: &[(&str, &str)] = &[
    ("net.ipv4.ip_local_port_range", "32768\t60999"),
    ("net.ipv4.tcp_fin_timeout", "60"),
    ("net.ipv4.tcp_keepalive_time", "7200"),
    ("net.ipv4.tcp_rfc1337", "0"),
    ("net.ipv4.tcp_syn_retries", "6"),
    ("net.ipv4.tcp_syncookies", "1"),
];

/// Applied first, so every case starts from a non-empty state dir and persisted file.
const GOOD: &str = "version: 1\nname: good\nsysctls:\n  net.ipv4.tcp_fin_timeout: 45\n  net.ipv4.tcp_keepalive_time: 900\n";

/// A valid profile that would change keys, for cases where the state or environment is bad.
const OTHER: &str = "version: 1\nname: other\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n  net.ipv4.tcp_keepalive_time: 600\n  net.ipv4.tcp_syn_retries: 3\n  net.ipv4.ip_local_port_range: [10000, 59999]\n";

/// One run with its wall time and peak memory (from wait4's rusage).
struct Measured {
    run: Run,
    elapsed: Duration,
    max_rss_kb: i64,
}

// The child is reaped by wait4 below, which also yields its rusage.
#[allow(clippy::zombie_processes)]
fn run_measured(args: &[String]) -> Measured {
    let started = Instant::now();
    let mut child = Command::new(bin())
        .args(args)
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            pipe.read_to_end(&mut text).unwrap();
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 reaps the child we spawned (never waited on elsewhere).
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { nix::libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    let elapsed = started.elapsed();
    let code = if nix::libc::WIFEXITED(status) {
        nix::libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Measured {
        run: Run {
            code,
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        },
        elapsed,
        max_rss_kb: usage.ru_maxrss,
    }
}

/// A sandbox with GOOD applied, and a place for case files outside the compared dirs.
struct World {
    sb: Sandbox,
    ns: Option<Netns>,
}

impl World {
    fn fake(tree: &[(&str, &str)]) -> Self {
        Self::applied(Sandbox::fake(tree), None)
    }

    fn netns() -> Option<Self> {
        let ns = Netns::create()?;
        Some(Self::applied(Sandbox::netns(&ns), Some(ns)))
    }

    fn applied(sb: Sandbox, ns: Option<Netns>) -> Self {
        std::fs::create_dir_all(sb.dir.path().join("cases")).unwrap();
        let good = sb.file("good.yaml", GOOD);
        sb.run(&["apply", good.to_str().unwrap()]).expect(0);
        assert!(sb.state().join("history.jsonl").exists());
        assert!(sb.persisted().exists());
        Self { sb, ns }
    }

    fn case_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.sb.dir.path().join("cases").join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// The sandbox's own flags with `flag`'s value replaced (or the flag added).
    fn args_with(&self, flag: &str, value: &str) -> Vec<String> {
        let mut args = self.sb.args.clone();
        match args.iter().position(|a| a == flag) {
            Some(i) => args[i + 1] = value.to_owned(),
            None => args.extend([flag.to_owned(), value.to_owned()]),
        }
        args
    }

    /// Everything a failed command must not touch.
    fn snapshot(&self) -> Snapshot {
        let kernel = match &self.ns {
            None => snapshot_dir(&self.sb.root()),
            Some(ns) => NS_KEYS
                .iter()
                .map(|k| (PathBuf::from(k), ns.read(k).into_bytes()))
                .collect(),
        };
        Snapshot {
            kernel,
            sysctl_d: snapshot_dir(&self.sb.dir.path().join("sysctl.d")),
            state: snapshot_dir(&self.sb.state()),
            kinds: kinds(self.sb.dir.path()),
        }
    }
}

/// Keys read back inside the namespace.
const NS_KEYS: &[&str] = &[
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_syn_retries",
    "net.ipv4.tcp_syncookies",
];

#[derive(Debug, PartialEq)]
struct Snapshot {
    kernel: Vec<(PathBuf, Vec<u8>)>,
    sysctl_d: Vec<(PathBuf, Vec<u8>)>,
    state: Vec<(PathBuf, Vec<u8>)>,
    /// Every path under the sandbox with its file type (catches new dirs, links, temp files).
    kinds: Vec<(PathBuf, String)>,
}

fn kinds(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let kind = if meta.is_dir() {
                stack.push(path.clone());
                "dir".to_owned()
            } else if meta.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&path).unwrap().display())
            } else {
                format!("{:?}", meta.file_type())
            };
            out.push((path, kind));
        }
    }
    out.sort();
    out
}

#[derive(Default)]
struct Tally {
    cases: usize,
    unchanged: usize,
}

impl Tally {
    /// Runs one case: exit code, every expected substring, bounded time, nothing changed.
    fn check(
        &mut self,
        world: &World,
        label: &str,
        args: Vec<String>,
        code: i32,
        expect: &[&str],
    ) -> Measured {
        let before = world.snapshot();
        let m = run_measured(&args);
        let text = format!("{}{}", m.run.stderr, m.run.stdout);
        assert_eq!(
            m.run.code, code,
            "{label}: exit code\n--- stdout\n{}\n--- stderr\n{}",
            m.run.stdout, m.run.stderr
        );
        for e in expect {
            assert!(text.contains(e), "{label}: expected {e:?} in\n{text}");
        }
        assert!(
            m.elapsed < Duration::from_secs(10),
            "{label}: took {:?}",
            m.elapsed
        );
        self.cases += 1;
        assert_eq!(
            world.snapshot(),
            before,
            "{label}: a failed command changed something"
        );
        self.unchanged += 1;
        m
    }

    /// A profile case: `apply FILE`; `{p}` in the expectations stands for the file's path.
    fn profile(&mut self, world: &World, case: &ProfileCase) -> Measured {
        let path = world.case_file(&format!("{}.yaml", case.name), &case.text);
        let p = path.display().to_string();
        let expect: Vec<String> = case.expect.iter().map(|e| e.replace("{p}", &p)).collect();
        let expect: Vec<&str> = expect.iter().map(String::as_str).collect();
        let mut args = world.sb.args.clone();
        args.extend(["apply".to_owned(), p]);
        let m = self.check(world, case.name, args, case.code, &expect);
        if case.fast {
            assert!(
                m.elapsed < Duration::from_secs(2),
                "{}: must fail fast, took {:?}",
                case.name,
                m.elapsed
            );
            assert!(
                m.max_rss_kb < 100 * 1024,
                "{}: peak memory {} KiB",
                case.name,
                m.max_rss_kb
            );
        }
        m
    }
}

struct ProfileCase {
    name: &'static str,
    text: Vec<u8>,
    code: i32,
    expect: Vec<&'static str>,
    fast: bool,
}

fn case(
    name: &'static str,
    text: impl Into<Vec<u8>>,
    code: i32,
    expect: &[&'static str],
) -> ProfileCase {
    ProfileCase {
        name,
        text: text.into(),
        code,
        expect: expect.to_vec(),
        fast: false,
    }
}

fn bounded(name: &'static str, text: impl Into<Vec<u8>>, expect: &[&'static str]) -> ProfileCase {
    ProfileCase {
        fast: true,
        ..case(name, text, 3, expect)
    }
}

fn sysctls(body: &str) -> String {
    format!("version: 1\nsysctls:\n{body}")
}

/// Billion laughs: ten anchors, each a list of nine aliases of the previous one.
fn alias_bomb() -> String {
    let mut text = sysctls("  net.ipv4.tcp_fin_timeout: 30\n");
    text.push_str("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let prev = format!("*l{}", i - 1);
        text.push_str(&format!("l{i}: &l{i} [{}]\n", vec![prev; 9].join(", ")));
    }
    text
}

/// Every malformed profile: YAML syntax, types, values, keys, structure, size and shape.
fn profile_cases() -> Vec<ProfileCase> {
    let long_key = format!("  net.{}: 1\n", "a".repeat(300));
    let mut ten_mb = sysctls("  net.ipv4.tcp_fin_timeout: 30\n").into_bytes();
    ten_mb.extend(b"# padding\n".repeat(1024 * 1024));
    let deep_seq = sysctls(&format!(
        "  net.ipv4.tcp_fin_timeout: {}1{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    ));
    let deep_map = format!(
        "version: 1\nsysctls: {}1{}\n",
        "{a: ".repeat(10_000),
        "}".repeat(10_000)
    );
    vec![
        // YAML syntax
        case(
            "unclosed-flow-seq",
            "version: 1\nsysctls: [\n",
            3,
            &["{p}:3:1", "did not find expected node content"],
        ),
        case(
            "bad-indentation",
            sysctls("  net.ipv4.tcp_fin_timeout: 30\n net.ipv4.tcp_keepalive_time: 600\n"),
            3,
            &["{p}:4:2", "did not find expected key"],
        ),
        case(
            "tab-indentation",
            "version: 1\nsysctls:\n\tnet.ipv4.tcp_fin_timeout: 30\n",
            3,
            &["{p}:3:2", "tabs disallowed"],
        ),
        case(
            "two-documents",
            "version: 1\n---\nversion: 1\n",
            3,
            &["{p}:2:1", "only one YAML document"],
        ),
        case(
            "unterminated-quote",
            "version: 1\nname: \"abc\nsysctls: {}\n",
            3,
            &["{p}:2:7", "quoted scalar"],
        ),
        case(
            "unknown-escape",
            "version: 1\nname: \"a\\qb\"\nsysctls: {}\n",
            3,
            &["{p}:2:7", "unknown escape character"],
        ),
        case(
            "unbalanced-flow-map",
            "version: 1\nsysctls: {net.ipv4.tcp_fin_timeout: 30]\n",
            3,
            &["{p}:2:", "flow mapping"],
        ),
        case(
            "non-scalar-key",
            "version: 1\n? [1]\n: 2\n",
            3,
            &["{p}:2:3", "mapping keys must be plain scalars"],
        ),
        case(
            "scalar-document",
            "just a sentence\n",
            3,
            &["{p}:1:1", "a profile is a mapping, not a scalar"],
        ),
        case(
            "list-document",
            "- net.ipv4.tcp_fin_timeout\n",
            3,
            &["{p}:1:1", "a profile is a mapping, not a list"],
        ),
        // wrong types
        case(
            "sysctls-list",
            "version: 1\nsysctls: [1, 2]\n",
            3,
            &["{p}:2:10", "`sysctls` must be a mapping, not a list"],
        ),
        case(
            "sysctls-scalar",
            "version: 1\nsysctls: 5\n",
            3,
            &["{p}:2:10", "`sysctls` must be a mapping, not a scalar"],
        ),
        case(
            "name-list",
            "version: 1\nname: [a]\nsysctls: {}\n",
            3,
            &["{p}:2:7", "`name` must be a string, not a list"],
        ),
        case(
            "context-list",
            "version: 1\ncontext: [nat]\nsysctls: {}\n",
            3,
            &["{p}:2:10", "`context` must be a mapping"],
        ),
        case(
            "context-fact-int",
            "version: 1\ncontext:\n  nat: 1\nsysctls: {}\n",
            3,
            &["{p}:3:8", "`nat` must be true or false"],
        ),
        case(
            "context-fact-unknown",
            "version: 1\ncontext:\n  natt: true\nsysctls: {}\n",
            3,
            &[
                "{p}:3:3",
                "unknown context fact `natt`",
                "did you mean `nat`",
            ],
        ),
        case(
            "extends-mapping",
            "version: 1\nextends: {a: b}\nsysctls: {}\n",
            3,
            &["{p}:2:10", "`extends` must be a string, not a mapping"],
        ),
        case(
            "value-mapping",
            sysctls("  net.ipv4.tcp_fin_timeout: {value: {a: 1}}\n"),
            3,
            &[
                "{p}:3:37",
                "net.ipv4.tcp_fin_timeout: a value is a scalar or a list",
            ],
        ),
        case(
            "list-element-mapping",
            sysctls("  net.ipv4.ip_local_port_range: [{a: 1}, 2]\n"),
            3,
            &[
                "{p}:3:34",
                "net.ipv4.ip_local_port_range: list elements must be scalars",
            ],
        ),
        case(
            "setting-without-value",
            sysctls("  net.ipv4.tcp_fin_timeout: {reason: x}\n"),
            3,
            &["{p}:3:3", "net.ipv4.tcp_fin_timeout has no `value`"],
        ),
        case(
            "unknown-setting-field",
            sysctls("  net.ipv4.tcp_fin_timeout: {value: 30, why: x}\n"),
            3,
            &["{p}:3:41", "unknown setting field `why`"],
        ),
        case(
            "null-value",
            sysctls("  net.ipv4.tcp_fin_timeout:\n"),
            3,
            &["{p}:3:27", "net.ipv4.tcp_fin_timeout has no value"],
        ),
        case(
            "optional-not-bool",
            sysctls("  net.ipv4.tcp_fin_timeout: {value: 30, optional: maybe}\n"),
            3,
            &[
                "{p}:3:51",
                "net.ipv4.tcp_fin_timeout: `optional` must be true or false",
            ],
        ),
        case(
            "reason-list",
            sysctls("  net.ipv4.tcp_fin_timeout: {value: 30, reason: [a]}\n"),
            3,
            &[
                "{p}:3:49",
                "net.ipv4.tcp_fin_timeout: `reason` must be a string",
            ],
        ),
        // values
        case(
            "tuple-too-long",
            sysctls("  net.ipv4.ip_local_port_range: [1024, 2000, 3000]\n"),
            3,
            &[
                "--> {p}:3:3",
                "net.ipv4.ip_local_port_range: expected 2 integer(s), got 3",
            ],
        ),
        case(
            "tuple-too-short",
            sysctls("  net.ipv4.ip_local_port_range: 1024\n"),
            3,
            &[
                "--> {p}:3:3",
                "net.ipv4.ip_local_port_range: expected 2 integer(s), got 1",
            ],
        ),
        case(
            "list-for-int",
            sysctls("  net.ipv4.tcp_fin_timeout: [1, 2]\n"),
            3,
            &[
                "--> {p}:3:3",
                "net.ipv4.tcp_fin_timeout: expected 1 integer(s), got 2",
            ],
        ),
        case(
            "word-for-int",
            sysctls("  net.ipv4.tcp_fin_timeout: abc\n"),
            3,
            &[
                "--> {p}:3:3",
                "net.ipv4.tcp_fin_timeout: \"abc\" is not an integer",
            ],
        ),
        case(
            "float",
            sysctls("  net.ipv4.tcp_fin_timeout: 1.5\n"),
            3,
            &["--> {p}:3:3", "\"1.5\" is not an integer"],
        ),
        case(
            "syn-retries-0",
            sysctls("  net.ipv4.tcp_syn_retries: 0\n"),
            3,
            &[
                "--> {p}:3:3",
                "net.ipv4.tcp_syn_retries: 0 is outside the kernel's accepted range 1..=127",
            ],
        ),
        case(
            "syn-retries-128",
            sysctls("  net.ipv4.tcp_syn_retries: 128\n"),
            3,
            &[
                "--> {p}:3:3",
                "net.ipv4.tcp_syn_retries: 128 is outside the kernel's accepted range 1..=127",
            ],
        ),
        case(
            "huge-number",
            sysctls("  net.ipv4.tcp_syn_retries: 99999999999999999999999999\n"),
            3,
            &[
                "--> {p}:3:3",
                "net.ipv4.tcp_syn_retries: 99999999999999999999999999 is outside",
            ],
        ),
        case(
            "port-range-inverted",
            sysctls("  net.ipv4.ip_local_port_range: [60000, 10001]\n"),
            3,
            &[
                "--> {p}:3:3",
                "ip_local_port_range 60000 10001 has its low end above its high end",
            ],
        ),
        case(
            "port-out-of-bounds",
            sysctls("  net.ipv4.ip_local_port_range: [0, 70000]\n"),
            3,
            &[
                "--> {p}:3:3",
                "net.ipv4.ip_local_port_range: 0 is outside the kernel's accepted range 1..=65535",
            ],
        ),
        case(
            "leading-zero",
            sysctls("  net.ipv4.tcp_fin_timeout: 010\n"),
            3,
            &[
                "{p}:3:29",
                "net.ipv4.tcp_fin_timeout: \"010\" is not a plain decimal number",
            ],
        ),
        case(
            "leading-zero-in-tuple",
            sysctls("  net.ipv4.ip_local_port_range: [010, 60999]\n"),
            3,
            &[
                "{p}:3:",
                "net.ipv4.ip_local_port_range: \"010\" is not a plain decimal number",
            ],
        ),
        case(
            "hex",
            sysctls("  net.ipv4.tcp_fin_timeout: 0x10\n"),
            3,
            &[
                "{p}:3:29",
                "net.ipv4.tcp_fin_timeout: \"0x10\" is not a plain decimal number",
            ],
        ),
        case(
            "plus-sign",
            sysctls("  net.ipv4.tcp_fin_timeout: +5\n"),
            3,
            &["{p}:3:29", "\"+5\" is not a plain decimal number"],
        ),
        case(
            "boolean-true",
            sysctls("  net.ipv4.tcp_fin_timeout: true\n"),
            3,
            &[
                "{p}:3:29",
                "net.ipv4.tcp_fin_timeout: \"true\" is not a sysctl value",
            ],
        ),
        case(
            "boolean-yes",
            sysctls("  net.ipv4.tcp_syncookies: yes\n"),
            3,
            &[
                "{p}:3:28",
                "net.ipv4.tcp_syncookies: \"yes\" is not a sysctl value",
            ],
        ),
        case(
            "control-character",
            sysctls("  net.ipv4.tcp_fin_timeout: \"3\\a\"\n"),
            3,
            &["{p}:3:29", "net.ipv4.tcp_fin_timeout: control character"],
        ),
        case(
            "enum-out-of-set",
            sysctls("  net.ipv4.tcp_syncookies: 7\n"),
            3,
            &[
                "--> {p}:3:3",
                "net.ipv4.tcp_syncookies: 7 is not one of [0, 1, 2]",
            ],
        ),
        case(
            "bool-out-of-range",
            sysctls("  net.ipv4.tcp_rfc1337: 2\n"),
            3,
            &[
                "--> {p}:3:3",
                "net.ipv4.tcp_rfc1337: expected 0 or 1, got 2",
            ],
        ),
        // keys
        case(
            "unknown-key",
            sysctls("  net.ipv4.tcp_fin_timeotu: 30\n"),
            3,
            &[
                "--> {p}:3:3",
                "net.ipv4.tcp_fin_timeotu is not a known sysctl",
                "did you mean `net.ipv4.tcp_fin_timeout`",
            ],
        ),
        case(
            "traversal-relative",
            sysctls("  ../etc/passwd: 1\n"),
            3,
            &[
                "{p}:3:3",
                "invalid sysctl key \"../etc/passwd\"",
                "leave the sysctl root",
            ],
        ),
        case(
            "traversal-absolute",
            sysctls("  /etc/passwd: 1\n"),
            3,
            &[
                "{p}:3:3",
                "invalid sysctl key \"/etc/passwd\"",
                "absolute paths",
            ],
        ),
        case(
            "traversal-inner",
            sysctls("  net/../../x: 1\n"),
            3,
            &[
                "{p}:3:3",
                "invalid sysctl key \"net/../../x\"",
                "leave the sysctl root",
            ],
        ),
        case(
            "traversal-hidden",
            sysctls("  net/.hidden/x: 1\n"),
            3,
            &[
                "{p}:3:3",
                "invalid sysctl key \"net/.hidden/x\"",
                "could leave the sysctl root",
            ],
        ),
        case(
            "nul-in-key",
            sysctls("  \"net.ipv4.tcp\\0fin\": 1\n"),
            3,
            &[
                "{p}:3:3",
                "invalid sysctl key \"net.ipv4.tcp\\0fin\"",
                "'\\0' is not allowed",
            ],
        ),
        case(
            "300-char-key",
            sysctls(&long_key),
            3,
            &[
                "{p}:3:3",
                "invalid sysctl key \"net.aaaaaaaa",
                "longer than 256 bytes",
            ],
        ),
        case(
            "one-component-key",
            sysctls("  swappiness: 10\n"),
            3,
            &[
                "{p}:3:3",
                "invalid sysctl key \"swappiness\"",
                "at least two components",
            ],
        ),
        // A glob is a pattern key (sysctl.d(5)); one this broad meets keys that cannot take
        // its value, each refused at the pattern's line.
        case(
            "glob-key",
            sysctls("  net.ipv4.*: 1\n"),
            3,
            &[
                "{p}:3:3",
                "error[value-shape]: net.ipv4.ip_local_port_range: expected 2 integer(s)",
            ],
        ),
        case(
            "glob-malformed",
            sysctls("  net.ipv4..*: 1\n"),
            3,
            &["{p}:3:3", "not a valid glob over sysctl keys"],
        ),
        case(
            "shell-in-key",
            sysctls("  net.ipv4.tcp_$(reboot): 1\n"),
            3,
            &[
                "{p}:3:3",
                "invalid sysctl key \"net.ipv4.tcp_$(reboot)\"",
                "'$' is not allowed",
            ],
        ),
        case(
            "empty-component",
            sysctls("  net..ipv4: 1\n"),
            3,
            &[
                "{p}:3:3",
                "invalid sysctl key \"net..ipv4\"",
                "empty component",
            ],
        ),
        case(
            "duplicate-key",
            sysctls("  net.ipv4.tcp_fin_timeout: 30\n  net.ipv4.tcp_fin_timeout: 31\n"),
            3,
            &[
                "{p}:4:3",
                "duplicate key \"net.ipv4.tcp_fin_timeout\" (first at line 3)",
            ],
        ),
        case(
            "duplicate-dotted-slashed",
            sysctls("  net.ipv4.tcp_fin_timeout: 30\n  net/ipv4/tcp_fin_timeout: 31\n"),
            3,
            &["{p}:4:3", "net.ipv4.tcp_fin_timeout is set twice"],
        ),
        // structure
        case(
            "self-extends",
            "version: 1\nextends: self-extends.yaml\nsysctls: {}\n",
            3,
            &["{p}:2:10", "profile inheritance forms a cycle"],
        ),
        case(
            "missing-parent",
            "version: 1\nextends: nope.yaml\nsysctls: {}\n",
            3,
            &["{p}:2:10", "cannot read parent profile", "nope.yaml"],
        ),
        case("empty-file", "", 3, &["{p}:1:1", "profile is empty"]),
        case(
            "comments-only",
            "# nothing here\n",
            3,
            &["{p}:1:1", "profile is empty"],
        ),
        case(
            "non-utf8",
            b"version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: \xff\xfe\n".to_vec(),
            3,
            &["{p}:3:29", "profile is not valid UTF-8"],
        ),
        case(
            "unknown-top-level-field",
            "version: 1\nsysctl:\n  net.ipv4.tcp_fin_timeout: 30\n",
            3,
            &[
                "{p}:2:1",
                "unknown top-level field `sysctl`",
                "did you mean `sysctls`",
            ],
        ),
        case(
            "version-2",
            "version: 2\nsysctls: {}\n",
            3,
            &["{p}:1:10", "unsupported profile format version 2"],
        ),
        case(
            "version-word",
            "version: one\nsysctls: {}\n",
            3,
            &["{p}:1:10", "unsupported profile format version one"],
        ),
        // size and shape bombs: refused quickly, in bounded memory
        bounded(
            "10-MB-file",
            ten_mb,
            &["{p}:1:1", "it is larger than 1048576 bytes"],
        ),
        bounded(
            "alias-bomb",
            alias_bomb(),
            &["{p}:5:", "YAML aliases (*name) are not allowed"],
        ),
        bounded(
            "deep-flow-seq",
            deep_seq,
            &["{p}:3:", "recursion limit exceeded"],
        ),
        bounded(
            "deep-flow-map",
            deep_map,
            &["{p}:2:", "nesting deeper than 32 levels"],
        ),
    ]
}

#[test]
fn malformed_input_is_refused_with_its_place_and_changes_nothing() {
    let mut tally = Tally::default();
    let world = World::fake(TREE);
    let cases = profile_cases();
    for case in &cases {
        tally.profile(&world, case);
    }

    // Extends cycle across two files, and a profile that cannot be read at all.
    let a = world.case_file(
        "cycle-a.yaml",
        b"version: 1\nextends: cycle-b.yaml\nsysctls: {}\n",
    );
    let b = world.case_file(
        "cycle-b.yaml",
        b"version: 1\nextends: [cycle-a.yaml]\nsysctls: {}\n",
    );
    let mut args = world.sb.args.clone();
    args.extend(["apply".into(), a.display().to_string()]);
    let at = format!("{}:2:11", b.display());
    tally.check(
        &world,
        "extends-cycle",
        args,
        3,
        &[
            at.as_str(),
            "profile inheritance forms a cycle",
            "cycle-a.yaml -> ",
            "cycle-b.yaml -> ",
        ],
    );
    let missing = world
        .sb
        .dir
        .path()
        .join("cases/does-not-exist.yaml")
        .display()
        .to_string();
    let mut args = world.sb.args.clone();
    args.extend(["apply".into(), missing.clone()]);
    let at = format!("{missing}:1:1");
    tally.check(
        &world,
        "missing-profile",
        args,
        3,
        &[at.as_str(), "cannot read profile"],
    );

    let other = world
        .case_file("other.yaml", OTHER.as_bytes())
        .display()
        .to_string();
    let sub = |extra: &[&str]| -> Vec<String> {
        world
            .sb
            .args
            .iter()
            .cloned()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };

    // A key this tree lacks: refused at plan time.
    let missing_key = world.case_file(
        "missing-key.yaml",
        b"version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n  net.core.somaxconn: 8192\n",
    );
    tally.check(
        &world,
        "missing-key",
        sub(&["apply", missing_key.to_str().unwrap()]),
        3,
        &["error[key-absent]: net.core.somaxconn does not exist here"],
    );

    // State problems (exit 6).
    tally.check(
        &world,
        "show-unknown-id",
        sub(&["show", "deadbeefdeadbeef"]),
        6,
        &["no snapshot \"deadbeefdeadbeef\" in the history"],
    );
    tally.check(
        &world,
        "show-non-hex-id",
        sub(&["show", "zz"]),
        6,
        &["\"zz\" is not a snapshot id"],
    );
    tally.check(
        &world,
        "rollback-to-unknown-id",
        sub(&["rollback", "--to", "deadbeef"]),
        6,
        &["no snapshot \"deadbeef\""],
    );

    // An unusable state dir: a regular file, or a symlink to the real one.
    let file = world.sb.dir.path().join("state-file");
    std::fs::write(&file, "not a directory\n").unwrap();
    let link = world.sb.dir.path().join("state-link");
    std::os::unix::fs::symlink(world.sb.state(), &link).unwrap();
    let writers = vec![
        vec!["apply", other.as_str()],
        vec!["rollback"],
        vec!["recover"],
    ];
    let readers = vec![vec!["history"], vec!["status"], vec!["show", "deadbeef"]];
    let file_cmds: Vec<_> = writers.iter().chain(&readers).cloned().collect();
    for (what, dir, cmds) in [("file", &file, file_cmds), ("symlink", &link, writers)] {
        let args = world.args_with("--state-dir", dir.to_str().unwrap());
        for cmd in cmds {
            let label = format!("state-dir-{what}-{}", cmd[0]);
            let expect = format!("{} is not a plain directory", dir.display());
            tally.check(
                &world,
                &label,
                args.iter()
                    .cloned()
                    .chain(cmd.iter().map(|s| s.to_string()))
                    .collect(),
                6,
                &[expect.as_str()],
            );
        }
    }

    // Environment problems (exit 7): no sysctl root, no such network namespace.
    let nowhere = world.sb.dir.path().join("no-such-root");
    for cmd in [
        vec!["apply", other.as_str()],
        vec!["rollback"],
        vec!["diff", other.as_str()],
    ] {
        let args: Vec<String> = world
            .args_with("--root", nowhere.to_str().unwrap())
            .into_iter()
            .chain(cmd.iter().map(|s| s.to_string()))
            .collect();
        let expect = format!("cannot open sysctl root {}", nowhere.display());
        tally.check(
            &world,
            &format!("no-root-{}", cmd[0]),
            args,
            7,
            &[expect.as_str()],
        );
        let args: Vec<String> = world
            .args_with("--netns", "sysprof-no-such-netns")
            .into_iter()
            .chain(cmd.iter().map(|s| s.to_string()))
            .collect();
        tally.check(
            &world,
            &format!("no-netns-{}", cmd[0]),
            args,
            7,
            &["cannot open network namespace \"sysprof-no-such-netns\""],
        );
    }

    // A tampered snapshot is refused by everything that reads it; nothing is touched.
    tampered(&mut tally);
    // A corrupt journal or history is refused before any write.
    corrupt_state(
        &mut tally,
        "journal.json",
        &["journal", "is corrupt"],
        // `status` reports a damaged journal instead (tests/safety.rs).
        &[&["apply", "{o}"], &["recover"], &["rollback"]],
    );
    corrupt_state(
        &mut tally,
        "history.jsonl",
        &["history", "is corrupt"],
        &[&["apply", "{o}"], &["rollback"], &["history"], &["status"]],
    );
    // Keys the kernel (here: the fake tree) refuses.
    unreadable_key(&mut tally);
    write_fails_after_earlier_writes(&mut tally);
    value_not_retained(&mut tally);

    assert!(tally.cases >= 60, "{} cases", tally.cases);
    println!(
        "bad inputs: {}, unchanged: {}",
        tally.cases, tally.unchanged
    );
}

fn tampered(tally: &mut Tally) {
    let world = World::fake(TREE);
    let history = world
        .sb
        .run(&["history", "--format", "json"])
        .expect(0)
        .json();
    let id = history["entries"][0]["id"].as_str().unwrap().to_owned();
    let record = world.sb.state().join("records").join(format!("{id}.json"));
    let text = std::fs::read_to_string(&record).unwrap();
    let edited = text.replacen("\"after\": \"45\"", "\"after\": \"44\"", 1);
    assert_ne!(text, edited, "the record was edited");
    std::fs::write(&record, edited).unwrap();
    let short = &id[..12];
    let message = format!("snapshot {short} is corrupt or was tampered with");
    let args = |extra: &[&str]| -> Vec<String> {
        world
            .sb
            .args
            .iter()
            .cloned()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };
    // What needs the damaged snapshot refuses it (exit 6); listings show it, marked.
    for (cmd, code) in [
        (vec!["show", id.as_str()], 6),
        (vec!["show", short], 6),
        (vec!["history"], 0),
        (vec!["status"], 0),
        (vec!["rollback"], 6),
        (vec!["rollback", "--to", short], 6),
    ] {
        tally.check(
            &world,
            &format!("tampered-{}", cmd.join("-")),
            args(&cmd),
            code,
            &[message.as_str()],
        );
    }
}

fn corrupt_state(tally: &mut Tally, name: &str, expect: &[&str], cmds: &[&[&str]]) {
    let world = World::fake(TREE);
    let other = world
        .case_file("other.yaml", OTHER.as_bytes())
        .display()
        .to_string();
    std::fs::write(world.sb.state().join(name), "{ this is not json\n").unwrap();
    for cmd in cmds {
        let cmd: Vec<String> = cmd.iter().map(|c| c.replace("{o}", &other)).collect();
        let args = world
            .sb
            .args
            .iter()
            .cloned()
            .chain(cmd.iter().cloned())
            .collect();
        tally.check(
            &world,
            &format!("corrupt-{name}-{}", cmd[0]),
            args,
            6,
            expect,
        );
    }
}

/// A key whose file is a directory: reading it fails, so apply refuses before any write.
fn unreadable_key(tally: &mut Tally) {
    let world = World::fake(TREE);
    let key = world.sb.root().join(rel("net.ipv4.tcp_syn_retries"));
    std::fs::remove_file(&key).unwrap();
    std::fs::create_dir(&key).unwrap();
    let other = world
        .case_file("other.yaml", OTHER.as_bytes())
        .display()
        .to_string();
    let args = world
        .sb
        .args
        .iter()
        .cloned()
        .chain(["apply".to_owned(), other])
        .collect();
    tally.check(
        &world,
        "key-is-a-directory",
        args,
        7,
        &["read net.ipv4.tcp_syn_retries", "Is a directory"],
    );
}

/// The last key's path turns into a directory between the plan's read and the write (a FIFO
/// feeds the read, then is swapped for a directory before the reader sees EOF): the write fails
/// with EISDIR after three keys were written, and all three are restored.
fn write_fails_after_earlier_writes(tally: &mut Tally) {
    let world = World::fake(TREE);
    let other = world
        .case_file("other.yaml", OTHER.as_bytes())
        .display()
        .to_string();
    let before = world.snapshot();
    let key = world.sb.root().join(rel("net.ipv4.tcp_syn_retries"));
    std::fs::remove_file(&key).unwrap();
    nix::unistd::mkfifo(&key, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let spare = world.sb.dir.path().join("spare-dir");
    std::fs::create_dir(&spare).unwrap();
    let feeder = {
        let (key, spare) = (key.clone(), spare.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut fifo = loop {
                match std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(nix::libc::O_NONBLOCK)
                    .open(&key)
                {
                    Ok(f) => break f,
                    Err(e)
                        if e.raw_os_error() == Some(nix::libc::ENXIO)
                            && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(2))
                    }
                    Err(e) => panic!("feeding the FIFO: {e}"),
                }
            };
            fifo.write_all(b"6\n").unwrap();
            // The reader waits for EOF: swap the path for a directory before closing.
            std::fs::remove_file(&key).unwrap();
            std::fs::rename(&spare, &key).unwrap();
            drop(fifo);
        })
    };
    let mut args = world.sb.args.clone();
    args.extend(["apply".to_owned(), other]);
    let m = run_measured(&args);
    feeder.join().unwrap();
    let text = format!("{}{}", m.run.stderr, m.run.stdout);
    assert_eq!(
        m.run.code, 7,
        "EISDIR is not a kernel refusal of the value: {text}"
    );
    for e in [
        "write net.ipv4.tcp_syn_retries",
        "Is a directory",
        "3 key(s) restored",
    ] {
        assert!(text.contains(e), "expected {e:?} in {text}");
    }
    assert!(!text.contains("could NOT be restored"), "{text}");
    tally.cases += 1;
    // Put the original file back where the test made a directory: everything else is as before.
    std::fs::remove_dir(&key).unwrap();
    std::fs::write(&key, "6\n").unwrap();
    assert_eq!(
        world.snapshot(),
        before,
        "write-time EISDIR: the earlier writes must be undone"
    );
    tally.unchanged += 1;
}

/// A key that swallows writes (a character device like /dev/null): the read-back differs, the
/// kernel "did not keep" the value, exit 4, and every key written is restored.
fn value_not_retained(tally: &mut Tally) {
    let world = World::fake(TREE);
    let key = world.sb.root().join(rel("net.ipv4.tcp_syn_retries"));
    std::fs::remove_file(&key).unwrap();
    let dev = nix::sys::stat::makedev(1, 3);
    nix::sys::stat::mknod(
        &key,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        dev,
    )
    .expect("mknod needs root (as the netns tests do)");
    let other = world
        .case_file("other.yaml", OTHER.as_bytes())
        .display()
        .to_string();
    let args = world
        .sb
        .args
        .iter()
        .cloned()
        .chain(["apply".to_owned(), other])
        .collect();
    let m = tally.check(
        &world,
        "value-not-retained",
        args,
        4,
        &[
            "write net.ipv4.tcp_syn_retries",
            "the kernel did not keep the value written",
            "4 key(s) restored",
        ],
    );
    assert!(
        !m.run.stderr.contains("could NOT be restored"),
        "{}",
        m.run.stderr
    );
}

/// A copy of the schema in which tcp_syn_retries has no kernel_bounds, so validation lets an
/// out-of-range value through to the kernel.
fn schema_without_syn_bounds(dir: &Path) -> PathBuf {
    let schema = dir.join("schema");
    std::fs::create_dir_all(&schema).unwrap();
    let files = std::fs::read_dir(repo().join("schema")).unwrap().flatten();
    for entry in files.filter(|e| e.file_type().is_ok_and(|t| t.is_file())) {
        std::fs::copy(entry.path(), schema.join(entry.file_name())).unwrap();
    }
    let keys = std::fs::read_to_string(schema.join("keys.yaml")).unwrap();
    let start = keys.find("- key: net.ipv4.tcp_syn_retries\n").unwrap();
    let end = start + 1 + keys[start + 1..].find("\n- key:").unwrap();
    let entry = &keys[start..end];
    let line_start = entry.find("  kernel_bounds:").unwrap();
    let line_end = line_start + entry[line_start..].find('\n').unwrap() + 1;
    let edited = format!(
        "{}{}{}",
        &keys[..start + line_start],
        &keys[start + line_end..end],
        &keys[end..]
    );
    assert!(
        !edited[start..]
            .split("\n- key:")
            .next()
            .unwrap()
            .contains("kernel_bounds")
    );
    std::fs::write(schema.join("keys.yaml"), edited).unwrap();
    schema
}

#[test]
fn in_a_network_namespace_bad_input_leaves_the_namespace_untouched() {
    let Some(world) = World::netns() else { return };
    let mut tally = Tally::default();
    let wanted = [
        "unclosed-flow-seq",
        "tab-indentation",
        "sysctls-list",
        "tuple-too-long",
        "syn-retries-0",
        "syn-retries-128",
        "leading-zero",
        "hex",
        "boolean-true",
        "unknown-key",
        "traversal-relative",
        "nul-in-key",
        "duplicate-dotted-slashed",
        "version-2",
        "alias-bomb",
        "deep-flow-map",
    ];
    let cases = profile_cases();
    for name in wanted {
        tally.profile(&world, cases.iter().find(|c| c.name == name).unwrap());
    }
    let sub = |extra: &[&str]| -> Vec<String> {
        world
            .sb
            .args
            .iter()
            .cloned()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };
    tally.check(
        &world,
        "netns-show-unknown-id",
        sub(&["show", "deadbeefdeadbeef"]),
        6,
        &["no snapshot"],
    );

    // Past validation (no kernel_bounds in this schema), the kernel itself refuses 200 with
    // EINVAL on the last key written; the three keys written before it are restored.
    let schema = schema_without_syn_bounds(world.sb.dir.path());
    let p = world.case_file(
        "syn-200.yaml",
        b"version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n  net.ipv4.tcp_keepalive_time: 600\n  net.ipv4.tcp_syn_retries: 200\n  net.ipv4.ip_local_port_range: [10000, 59999]\n",
    );
    let p = p.to_str().unwrap();
    tally.check(
        &world,
        "netns-built-in-schema-refuses-200",
        sub(&["apply", p]),
        3,
        &["net.ipv4.tcp_syn_retries: 200 is outside the kernel's accepted range"],
    );
    let m = tally.check(
        &world,
        "netns-kernel-einval",
        sub(&["--schema", schema.to_str().unwrap(), "apply", p]),
        4,
        &["write net.ipv4.tcp_syn_retries: the kernel rejected the value as invalid (value \"200\")", "3 key(s) restored"],
    );
    assert!(
        !m.run.stderr.contains("could NOT be restored"),
        "{}",
        m.run.stderr
    );
    let ns = world.ns.as_ref().unwrap();
    assert_eq!(
        ns.read("net.ipv4.tcp_fin_timeout"),
        "45\n",
        "GOOD's value stays"
    );
    println!(
        "netns bad inputs: {}, unchanged: {}",
        tally.cases, tally.unchanged
    );
}
