//! Nothing lost, nothing let in: the state dir is trusted only when nobody else can write it,
//! non-regular files never hang a command, damage to the store is named and contained, every side
//! effect is checked before the first kernel write, and the kernel, the persisted file and the
//! history describe one state after every command. Each test is one case of README's "How apply
//! stays safe"; confirm-or-revert cases live in tests/confirm.rs.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Netns, Run, Sandbox, bin, profile, write_key};
use sysprof::error::exit;

const TREE: &[(&str, &str)] = &[
    ("net.ipv4.tcp_fin_timeout", "60"),
    ("net.ipv4.tcp_keepalive_time", "7200"),
    ("kernel.core_pattern", "core"),
];

const FIN_30: &str = "version: 1\nname: a\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n";
const KEEPALIVE_600: &str = "version: 1\nname: b\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n  net.ipv4.tcp_keepalive_time: 600\n";

/// A fake-tree sandbox with `FIN_30` applied (history #1).
fn applied_once() -> (Sandbox, String) {
    let sb = Sandbox::fake(TREE);
    let a = sb.file("a.yaml", FIN_30);
    sb.run(&["apply", a.to_str().unwrap()]).expect(0);
    (sb, a.display().to_string())
}

/// The history's record ids, oldest first.
fn record_ids(sb: &Sandbox) -> Vec<String> {
    std::fs::read_to_string(sb.state().join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn record_path(sb: &Sandbox, id: &str) -> std::path::PathBuf {
    sb.state().join("records").join(format!("{id}.json"))
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Runs sysprof with the sandbox's flags, killing it after `limit`: `None` when it hung.
fn run_bounded(sb: &Sandbox, args: &[&str], limit: Duration) -> Option<Run> {
    let mut child = Command::new(bin())
        .args(&sb.args)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let (mut out, mut err) = (String::new(), String::new());
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return Some(Run {
                code: status.code().unwrap_or(-1),
                stdout: out,
                stderr: err,
            });
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether this process may make mount namespaces (root with util-linux); says why not loudly,
/// and fails under SYSPROF_REQUIRE_NETNS=1 (CI).
fn can_unshare_mounts() -> bool {
    let ok = Command::new("unshare")
        .args(["-m", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let message = "REAL-KERNEL TEST NOT RUN: `unshare -m` failed (needs root and util-linux)";
        if std::env::var("SYSPROF_REQUIRE_NETNS").as_deref() == Ok("1") {
            panic!("{message} (SYSPROF_REQUIRE_NETNS=1)");
        }
        eprintln!("\n!!!!!!!!!! {message} !!!!!!!!!!\n");
    }
    ok
}

/// Runs sysprof inside a private mount namespace after `setup` (a shell snippet) ran there.
fn run_in_mount_ns(sb: &Sandbox, setup: &str, args: &[&str]) -> Run {
    let quoted: Vec<String> = sb
        .args
        .iter()
        .map(String::as_str)
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect();
    let script = format!("{setup} && exec '{}' {}", bin().display(), quoted.join(" "));
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------- trust nothing you did not write

#[test]
fn a_state_dir_others_can_write_or_own_is_refused_and_left_as_it_is() {
    let (sb, a) = applied_once();
    let b = sb.file("b.yaml", KEEPALIVE_600);
    let b = b.to_str().unwrap();
    for (what, path) in [
        ("state dir", sb.state()),
        ("records/", sb.state().join("records")),
    ] {
        chmod(&path, 0o777);
        for args in [
            vec!["apply", b],
            vec!["status"],
            vec!["rollback"],
            vec!["recover"],
        ] {
            let run = sb.run(&args).expect(exit::STATE);
            assert!(
                run.stderr
                    .contains("has mode 777: other users can write it")
                    && run.stderr.contains("chown/chmod"),
                "{what}, {args:?}: {}",
                run.stderr
            );
        }
        assert_eq!(
            mode(&path),
            0o777,
            "{what}: refused, never chmod'ed on the fly"
        );
        assert_eq!(sb.fake_value("net.ipv4.tcp_keepalive_time"), "7200\n");
        chmod(&path, 0o700);
    }
    // Owned by someone else: refused too.
    nix::unistd::chown(&sb.state(), Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let run = sb.run(&["apply", b]).expect(exit::STATE);
    assert!(
        run.stderr.contains("is owned by uid 65534"),
        "{}",
        run.stderr
    );
    nix::unistd::chown(&sb.state(), Some(nix::unistd::Uid::from_raw(0)), None).unwrap();

    // A journal and record planted by someone who could write the dir are never replayed:
    // while the dir is untrusted nothing runs, and core_pattern stays as it was.
    chmod(&sb.state(), 0o777);
    std::fs::write(
        sb.state().join("journal.json"),
        r#"{"id":"0000000000000000000000000000000000000000000000000000000000000000","phase":"intent"}"#,
    )
    .unwrap();
    sb.run(&["apply", &a]).expect(exit::STATE);
    assert_eq!(sb.fake_value("kernel.core_pattern"), "core\n");
    assert!(
        sb.state().join("journal.json").exists(),
        "the evidence is kept"
    );
}

#[test]
fn a_symlinked_state_dir_is_refused_and_a_symlinked_sysctl_d_must_resolve_to_a_trusted_dir() {
    let (sb, a) = applied_once();
    let link = sb.dir.path().join("state-link");
    std::os::unix::fs::symlink(sb.state(), &link).unwrap();
    let mut args = sb.args.clone();
    let at = args.iter().position(|a| a == "--state-dir").unwrap();
    args[at + 1] = link.display().to_string();
    let out = Command::new(bin())
        .args(&args)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::STATE));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a plain directory (symlink)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // sysctl.d may be a symlink (configuration management does that), to a trusted directory.
    let real = sb.dir.path().join("real-sysctl.d");
    std::fs::create_dir(&real).unwrap();
    let sd_link = sb.dir.path().join("sd-link");
    std::os::unix::fs::symlink(&real, &sd_link).unwrap();
    let with_sd = |dir: &Path| {
        let mut args = sb.args.clone();
        let at = args.iter().position(|a| a == "--sysctl-d").unwrap();
        args[at + 1] = dir.display().to_string();
        args
    };
    let b = sb.file("b.yaml", KEEPALIVE_600);
    let out = Command::new(bin())
        .args(with_sd(&sd_link))
        .args(["apply", b.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(real.join("99-sysprof.conf").is_file());
    // …but not to one others can write: refused before any kernel write.
    chmod(&real, 0o777);
    let out = Command::new(bin())
        .args(with_sd(&sd_link))
        .args(["apply", &a])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::ENVIRONMENT));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was changed"));
    assert_eq!(sb.fake_value("net.ipv4.tcp_keepalive_time"), "600\n");
}

#[test]
fn non_regular_files_are_refused_at_once_never_waited_on() {
    let (sb, _) = applied_once();
    let fifo = sb.dir.path().join("fifo.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let parent = sb.file(
        "child.yaml",
        &format!("version: 1\nextends: [{}]\nsysctls: {{}}\n", fifo.display()),
    );
    let limit = Duration::from_secs(10);
    for (what, args) in [
        ("profile", vec!["validate", fifo.to_str().unwrap()]),
        ("extends", vec!["apply", parent.to_str().unwrap()]),
    ] {
        let run = run_bounded(&sb, &args, limit).unwrap_or_else(|| panic!("{what}: hung"));
        assert_eq!(run.code, exit::INVALID_INPUT, "{what}: {}", run.stderr);
        assert!(
            run.stderr.contains("it is a FIFO, not a regular file"),
            "{what}: {}",
            run.stderr
        );
    }
    // A FIFO where a record or the history is expected.
    let id = record_ids(&sb).remove(0);
    let record = record_path(&sb, &id);
    std::fs::remove_file(&record).unwrap();
    nix::unistd::mkfifo(&record, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let run = run_bounded(&sb, &["rollback"], limit).expect("record FIFO: hung");
    assert_eq!(run.code, exit::STATE, "{}", run.stderr);
    assert!(run.stderr.contains("FIFO"), "{}", run.stderr);
    let history = sb.state().join("history.jsonl");
    std::fs::remove_file(&history).unwrap();
    nix::unistd::mkfifo(&history, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for args in [vec!["history"], vec!["status"]] {
        let run = run_bounded(&sb, &args, limit).expect("history FIFO: hung");
        assert_eq!(run.code, exit::STATE, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("FIFO"), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn a_file_that_is_not_a_profile_is_never_echoed_and_huge_values_are_cut() {
    let sb = Sandbox::fake(TREE);
    let secret = sb.file(
        "shadow",
        "root:$6$s3cr3tHASHs3cr3t$abcdefghijklmnop:19000:0:99999:7:::\n",
    );
    let child = sb.file(
        "child.yaml",
        &format!(
            "version: 1\nextends: [{}]\nsysctls: {{}}\n",
            secret.display()
        ),
    );
    let run = sb
        .run(&["validate", child.to_str().unwrap()])
        .expect(exit::INVALID_INPUT);
    assert!(
        run.stderr.contains("is not a sysprof profile"),
        "{}",
        run.stderr
    );
    let shown = format!("{}{}", run.stdout, run.stderr);
    assert!(!shown.contains("s3cr3t"), "content echoed: {shown}");

    let huge = sb.file(
        "huge.yaml",
        &format!(
            "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: {}\n",
            "x".repeat(500_000)
        ),
    );
    let run = sb
        .run(&["validate", huge.to_str().unwrap()])
        .expect(exit::INVALID_INPUT);
    let shown = format!("{}{}", run.stdout, run.stderr);
    assert!(shown.len() < 4000, "{} bytes shown", shown.len());
    assert!(shown.contains("xxx…"), "{}", &shown[..shown.len().min(600)]);
    let json = sb
        .run(&["validate", huge.to_str().unwrap(), "--format", "json"])
        .expect(exit::INVALID_INPUT);
    assert!(
        json.stdout.len() < 8000,
        "{} bytes of JSON",
        json.stdout.len()
    );
}

// ------------------------------------------------------------- damage to the store is contained

#[test]
fn a_damaged_record_is_listed_as_such_and_the_intact_change_still_rolls_back() {
    let (sb, _) = applied_once();
    let b = sb.file("b.yaml", KEEPALIVE_600);
    sb.run(&["apply", b.to_str().unwrap()]).expect(0);
    let ids = record_ids(&sb);
    let oldest = record_path(&sb, &ids[0]);
    let mut bytes = std::fs::read(&oldest).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&oldest, bytes).unwrap();

    let history = sb.run(&["history"]).expect(0).stdout;
    assert!(history.contains("DAMAGED: snapshot"), "{history}");
    assert!(
        history.contains(&ids[1][..12]) && history.contains("in effect"),
        "{history}"
    );
    let status = sb.run(&["status"]).expect(0).stdout;
    assert!(status.contains("DAMAGED history entry #1"), "{status}");
    assert!(
        !status.contains("DISAGREE"),
        "released keys are not disagreements: {status}"
    );
    sb.run(&["show", &ids[1][..12]]).expect(0);
    let refused = sb.run(&["rollback", "--to", &ids[0]]).expect(exit::STATE);
    assert!(
        refused.stderr.contains("cannot be rolled back to"),
        "{}",
        refused.stderr
    );

    sb.run(&["rollback"]).expect(0);
    assert_eq!(sb.fake_value("net.ipv4.tcp_keepalive_time"), "7200\n");
    assert_eq!(
        sb.fake_value("net.ipv4.tcp_fin_timeout"),
        "30\n",
        "#1 stays in effect"
    );
}

#[test]
fn a_torn_history_tail_is_reported_then_restored_from_the_records() {
    let (sb, _) = applied_once();
    let b = sb.file("b.yaml", KEEPALIVE_600);
    sb.run(&["apply", b.to_str().unwrap()]).expect(0);
    let path = sb.state().join("history.jsonl");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();

    for args in [["history"], ["status"]] {
        let out = sb.run(&args).expect(0).stdout;
        assert!(out.contains("TORN history tail"), "{args:?}: {out}");
    }
    // The next mutating command restores the committed line, so one rollback undoes one apply.
    sb.run(&["rollback"]).expect(0);
    assert_eq!(sb.fake_value("net.ipv4.tcp_keepalive_time"), "7200\n");
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "30\n");
    let history = sb.run(&["history", "--format", "json"]).expect(0).json();
    assert_eq!(history["entries"].as_array().unwrap().len(), 3, "{history}");
    assert!(history["torn"].is_null(), "{history}");
}

#[test]
fn an_empty_history_while_records_and_the_persisted_file_exist_is_a_warning() {
    let (sb, _) = applied_once();
    std::fs::write(sb.state().join("history.jsonl"), "").unwrap();
    let status = sb.run(&["status"]).expect(0).stdout;
    assert!(
        status.contains("WARNING: the history is empty, but records/ holds 1 record(s)")
            && status.contains("99-sysprof.conf exists"),
        "{status}"
    );
    assert!(!status.contains("agree"), "{status}");
    let json = sb.run(&["status", "--format", "json"]).expect(0).json();
    assert!(json["history_lost"].is_string(), "{json}");
}

#[test]
fn a_missing_record_is_named_with_the_way_out() {
    let (sb, a) = applied_once();
    let b = sb.file("b.yaml", KEEPALIVE_600);
    sb.run(&["apply", b.to_str().unwrap()]).expect(0);
    let ids = record_ids(&sb);
    let saved = std::fs::read(record_path(&sb, &ids[1])).unwrap();
    std::fs::remove_file(record_path(&sb, &ids[1])).unwrap();
    let history = sb.run(&["history"]).expect(0).stdout;
    assert!(
        history.contains("DAMAGED: its record is missing from records/"),
        "{history}"
    );
    let run = sb.run(&["rollback"]).expect(exit::STATE);
    assert!(
        run.stderr.contains("its record is missing from records/"),
        "{}",
        run.stderr
    );
    std::fs::write(record_path(&sb, &ids[1]), saved).unwrap();

    // A journal naming a record that is not there: every mutating command says what is missing
    // and how to get out; `recover --discard-journal` does, keeping the journal aside.
    let missing = "ab".repeat(32);
    std::fs::write(
        sb.state().join("journal.json"),
        format!(r#"{{"id":"{missing}","phase":"intent"}}"#),
    )
    .unwrap();
    let run = sb.run(&["apply", &a]).expect(exit::STATE);
    assert!(
        run.stderr.contains("which is missing from records/")
            && run.stderr.contains("recover --discard-journal"),
        "{}",
        run.stderr
    );
    let status = sb.run(&["status"]).expect(0).stdout;
    assert!(
        status.contains("UNFINISHED change abababababab"),
        "{status}"
    );
    sb.run(&["recover", "--discard-journal"]).expect(0);
    assert!(!sb.state().join("journal.json").exists());
    sb.run(&["apply", &a]).expect(0);

    // A journal that does not parse: status still reports, and the same way out works.
    std::fs::write(sb.state().join("journal.json"), "{\"id\":").unwrap();
    let status = sb.run(&["status"]).expect(0).stdout;
    assert!(
        status.contains("UNFINISHED change with a damaged journal"),
        "{status}"
    );
    sb.run(&["recover", "--discard-journal"]).expect(0);
    sb.run(&["recover"]).expect(0);
}

#[test]
fn leftovers_of_killed_runs_are_swept_by_recovery() {
    let (sb, _) = applied_once();
    let b = sb.file("b.yaml", KEEPALIVE_600);
    sb.run(&["apply", b.to_str().unwrap()]).expect(0);
    let sysctl_d = sb.persisted().parent().unwrap().to_owned();
    let temp = [
        sysctl_d.join(".99-sysprof.conf.AbC123"),
        sb.state().join(".history.jsonl.XyZ987"),
        sb.state().join(".journal.json.Qq1234"),
        sb.state().join(".pending.json.Rr5678"),
    ];
    for t in &temp {
        std::fs::write(t, "left by a killed run").unwrap();
    }
    let unrelated = sysctl_d.join(".keep-me");
    std::fs::write(&unrelated, "not ours").unwrap();
    // An abandoned record (its seq taken by a later commit) and a newer one that might be a
    // commit whose history line was lost.
    let ids = record_ids(&sb);
    let text = std::fs::read_to_string(record_path(&sb, &ids[0])).unwrap();
    let mut abandoned: serde_json::Value = serde_json::from_str(&text).unwrap();
    abandoned["time"] = "2000-01-01T00:00:00Z".into();
    let mut newer = abandoned.clone();
    newer["seq"] = 9.into();
    let plant = |record: &serde_json::Value| {
        use sha2::Digest;
        let bytes = serde_json::to_vec(record).unwrap();
        let id: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        std::fs::write(record_path(&sb, &id), bytes).unwrap();
        record_path(&sb, &id)
    };
    let (abandoned, newer) = (plant(&abandoned), plant(&newer));

    sb.run(&["recover"]).expect(0);
    for t in &temp {
        assert!(!t.exists(), "{} swept", t.display());
    }
    assert!(!abandoned.exists(), "the abandoned record is swept");
    assert!(newer.exists(), "a record that may be a lost commit is kept");
    assert!(
        unrelated.exists(),
        "files sysprof did not write are left alone"
    );
}

/// The target lock file of a sysctl root seen from this network namespace (the name
/// `SysctlTree::identity` gives it).
fn target_lock(root: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(root).unwrap();
    let netns = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
    Path::new("/run/lock/sysprof").join(format!("{:x}-{:x}-{netns:x}.lock", meta.dev(), meta.ino()))
}

// ------------------------------------------------- every side effect checked before the first write

#[test]
fn a_persist_dir_that_is_missing_is_created_0755() {
    let sb = Sandbox::fake(TREE);
    let mut args = sb.args.clone();
    let at = args.iter().position(|a| a == "--sysctl-d").unwrap();
    let dir = sb.dir.path().join("etc/sysctl.d");
    args[at + 1] = dir.display().to_string();
    let a = sb.file("a.yaml", FIN_30);
    let out = Command::new(bin())
        .args(&args)
        .arg("apply")
        .arg(&a)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&dir), 0o755);
    assert!(dir.join("99-sysprof.conf").is_file());
}

#[test]
fn a_read_only_or_full_persist_dir_stops_apply_before_the_kernel_is_touched() {
    if !can_unshare_mounts() {
        return;
    }
    let sb = Sandbox::fake(TREE);
    let a = sb.file("a.yaml", FIN_30);
    let dir = sb.persisted().parent().unwrap().display().to_string();
    let cases = [
        (
            "read-only",
            format!("mount --bind -o ro '{dir}' '{dir}'"),
            "Read-only file system",
        ),
        (
            "full",
            format!(
                "mount -t tmpfs -o size=8k tmpfs '{dir}' && (dd if=/dev/zero of='{dir}/fill' bs=4k count=8 2>/dev/null; true)"
            ),
            "No space left on device",
        ),
    ];
    for (what, setup, errno) in cases {
        let run = run_in_mount_ns(&sb, &setup, &["apply", a.to_str().unwrap()]);
        assert_eq!(run.code, exit::ENVIRONMENT, "{what}: {}", run.stderr);
        assert!(
            run.stderr.contains(errno) && run.stderr.contains("nothing was changed"),
            "{what}: {}",
            run.stderr
        );
        assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "60\n", "{what}");
        assert!(
            !sb.state().join("journal.json").exists(),
            "{what}: no journal left"
        );
        let history = sb.run(&["history", "--format", "json"]).expect(0).json();
        assert_eq!(history["entries"], serde_json::json!([]), "{what}");
    }
}

#[test]
fn a_commit_that_fails_is_undone_before_the_command_reports() {
    let (sb, _) = applied_once();
    let before = std::fs::read(sb.persisted()).unwrap();
    let b = sb.file("b.yaml", KEEPALIVE_600);
    let run = sb.run_env(
        &["apply", b.to_str().unwrap()],
        &[("SYSPROF_FAULT_EIO", "append(history.jsonl):1")],
    );
    let run = run.expect(exit::FAILURE);
    assert!(
        run.stderr.contains("cannot append to") && run.stderr.contains("restored"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.fake_value("net.ipv4.tcp_keepalive_time"), "7200\n");
    assert_eq!(
        std::fs::read(sb.persisted()).unwrap(),
        before,
        "the file is back too"
    );
    assert!(!sb.state().join("journal.json").exists());
    let status = sb.run(&["status"]).expect(0).stdout;
    assert!(
        status.contains("kernel, persisted file and history agree"),
        "{status}"
    );
    assert_eq!(record_ids(&sb).len(), 1);
}

#[test]
fn two_state_dirs_on_one_kernel_take_turns() {
    // Both change both keys; run at once, each apply is whole: the kernel ends exactly at one
    // profile, never at a mix, and no target lock file is left behind.
    let root = Sandbox::fake(TREE);
    let other = Sandbox::fake(&[]);
    let mut other_args = other.args.clone();
    let at = other_args.iter().position(|a| a == "--root").unwrap();
    other_args[at + 1] = root.root().display().to_string();
    let p = root.file("p.yaml", "version: 1\nname: p\nsysctls:\n  net.ipv4.tcp_fin_timeout: 11\n  net.ipv4.tcp_keepalive_time: 111\n");
    let q = root.file("q.yaml", "version: 1\nname: q\nsysctls:\n  net.ipv4.tcp_fin_timeout: 22\n  net.ipv4.tcp_keepalive_time: 222\n");
    let spawn = |args: &[String], profile: &Path| {
        Command::new(bin())
            .args(args)
            .args(["--lock-timeout", "60", "apply"])
            .arg(profile)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    for _ in 0..6 {
        let children = [spawn(&root.args, &p), spawn(&other_args, &q)];
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let pair = (
            root.fake_value("net.ipv4.tcp_fin_timeout"),
            root.fake_value("net.ipv4.tcp_keepalive_time"),
        );
        assert!(
            pair == ("11\n".into(), "111\n".into()) || pair == ("22\n".into(), "222\n".into()),
            "a mix of two profiles: {pair:?}"
        );
    }
    let lock = target_lock(&root.root());
    assert!(!lock.exists(), "{} left behind", lock.display());

    // While one state dir's change awaits confirmation, the other one keeps off the kernel.
    let r = root.file(
        "r.yaml",
        "version: 1\nname: r\nsysctls:\n  net.ipv4.tcp_fin_timeout: 33\n",
    );
    let pending = root.run(&["apply", r.to_str().unwrap(), "--confirm-within", "60s"]);
    assert!(pending.expect(0).stdout.contains("NOT persisted"));
    let out = Command::new(bin())
        .args(&other_args)
        .args(["--lock-timeout", "0", "apply"])
        .arg(&q)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::STATE));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "a change from state dir {} awaits confirmation on this kernel",
            root.state().display()
        )),
        "{stderr}"
    );
    root.run(&["rollback"]).expect(0);
    let out = Command::new(bin())
        .args(&other_args)
        .args(["apply"])
        .arg(&q)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ------------------------------------------- kernel, persisted file and history describe one state

#[test]
fn stacked_applies_release_what_the_new_profile_no_longer_names() {
    let Some(ns) = Netns::create() else { return };
    let sb = Sandbox::netns(&ns);
    let dc = profile("datacenter-client.yaml");
    let nat = profile("nat-facing-server.yaml");
    let fresh_reuse = ns.read("net.ipv4.tcp_tw_reuse");
    sb.run(&["apply", dc.to_str().unwrap()]).expect(0);
    assert_eq!(ns.read("net.ipv4.tcp_tw_reuse"), "1\n");

    let diff = sb.run(&["diff", nat.to_str().unwrap()]).expect(0).stdout;
    assert!(
        diff.lines()
            .any(|l| l.starts_with("net.ipv4.tcp_tw_reuse") && l.contains("release")),
        "{diff}"
    );
    sb.run(&["apply", nat.to_str().unwrap()]).expect(0);
    assert_eq!(ns.read("net.ipv4.tcp_tw_reuse"), fresh_reuse, "released");
    let persisted = std::fs::read_to_string(sb.persisted()).unwrap();
    assert!(!persisted.contains("tcp_tw_reuse"), "{persisted}");
    let status = sb.run(&["status"]).expect(0).stdout;
    assert!(
        status.contains("kernel, persisted file and history agree"),
        "{status}"
    );

    // --keep-released keeps it, and persists it.
    sb.run(&["rollback"]).expect(0);
    assert_eq!(ns.read("net.ipv4.tcp_tw_reuse"), "1\n");
    sb.run(&["apply", nat.to_str().unwrap(), "--keep-released"])
        .expect(0);
    assert_eq!(ns.read("net.ipv4.tcp_tw_reuse"), "1\n");
    let persisted = std::fs::read_to_string(sb.persisted()).unwrap();
    assert!(
        persisted.contains("net.ipv4.tcp_tw_reuse = 1"),
        "{persisted}"
    );
    let status = sb.run(&["status"]).expect(0).stdout;
    assert!(
        status.contains("kernel, persisted file and history agree"),
        "{status}"
    );
}

#[test]
fn rollback_overwrites_another_writers_value_only_with_force() {
    let (sb, _) = applied_once();
    write_key(&sb.root(), "net.ipv4.tcp_fin_timeout", "45");
    let refused = sb.run(&["rollback"]).expect(exit::STATE);
    assert!(
        refused
            .stderr
            .contains("net.ipv4.tcp_fin_timeout is 45 (sysprof set 30 in #1)")
            && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "45\n");
    let plan = sb.run(&["rollback", "--dry-run"]).expect(exit::STATE);
    assert!(
        plan.stderr.contains("is 45"),
        "the dry run shows it too: {}",
        plan.stderr
    );
    sb.run(&["rollback", "--force"]).expect(0);
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "60\n");
}

// ------------------------------------------------------------------------------------ bad input

#[test]
fn out_of_range_durations_and_counts_are_usage_errors_before_anything_runs() {
    let sb = Sandbox::fake(TREE);
    let a = sb.file("a.yaml", FIN_30);
    let a = a.to_str().unwrap();
    for args in [
        vec!["apply", a, "--confirm-within", "18446744073709551615s"],
        vec!["apply", a, "--confirm-within", "600000000y"],
        vec!["apply", a, "--watch", "99999999999d"],
        vec!["apply", a, "--confirm-within", "367d"],
        vec!["--lock-timeout", "18446744073709551615", "status"],
        vec!["--lock-timeout", "86401", "status"],
        vec!["health", a, "--over", "1000000000000s"],
    ] {
        let run = sb.run(&args);
        assert_eq!(run.code, exit::USAGE, "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
        assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "60\n");
    }
    assert!(!sb.state().exists(), "nothing was written");
}

#[test]
fn a_profile_says_what_it_means_or_is_refused() {
    let (sb, _) = applied_once();
    let cases: &[(&str, &str, &str)] = &[
        ("no-sysctls", "version: 1\nname: x\n", "no `sysctls:`"),
        (
            "quoted-version",
            "version: \"1\"\nsysctls:\n  net.ipv4.tcp_fin_timeout: 20\n",
            "version",
        ),
        (
            "no-version",
            "sysctls:\n  net.ipv4.tcp_fin_timeout: 20\n",
            "version",
        ),
        (
            "negative",
            "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: -1\n",
            "negative-value",
        ),
    ];
    for (name, text, needle) in cases {
        let path = sb.file(&format!("{name}.yaml"), text);
        let run = sb
            .run(&["apply", path.to_str().unwrap()])
            .expect(exit::INVALID_INPUT);
        assert!(run.stderr.contains(needle), "{name}: {}", run.stderr);
        assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "30\n", "{name}");
    }
    let long = sb.file(
        "long-key.yaml",
        &format!(
            "version: 1\nsysctls:\n  net.ipv4.{}: 1\n",
            "k".repeat(20_000)
        ),
    );
    let run = sb
        .run(&["apply", long.to_str().unwrap()])
        .expect(exit::INVALID_INPUT);
    assert!(
        run.stderr.contains("a sysctl name is at most 256 bytes"),
        "{}",
        &run.stderr[..300.min(run.stderr.len())]
    );
    assert!(run.stderr.len() < 2000);
    // Empty on purpose: releases what sysprof set.
    let empty = sb.file("empty.yaml", "version: 1\nname: empty\nsysctls: {}\n");
    sb.run(&["apply", empty.to_str().unwrap()]).expect(0);
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "60\n");
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let sb = Sandbox::fake(TREE);
    let quoted: Vec<String> = sb.args.iter().map(|a| format!("'{a}'")).collect();
    let script = format!(
        "'{}' {} schema 2>\"$0\" | head -c 10 >/dev/null",
        bin().display(),
        quoted.join(" ")
    );
    let err = sb.dir.path().join("stderr");
    let status = Command::new("sh")
        .args(["-c", &script])
        .arg(&err)
        .status()
        .unwrap();
    assert!(status.success());
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert_eq!(stderr, "", "no 'Broken pipe' error");
}

#[test]
fn the_recovery_units_verify_and_their_command_enforces_a_due_deadline() {
    let dir = common::repo().join("examples/systemd");
    common::verify_units(&dir, &["sysprof-recover.service", "sysprof-recover.timer"]);
    let unit = std::fs::read_to_string(dir.join("sysprof-recover.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=/usr/local/bin/sysprof "))
        .unwrap();
    let exec: Vec<&str> = exec.split_whitespace().collect();
    // A change whose watcher died and whose deadline passed: the unit's command reverts it.
    let sb = Sandbox::fake(TREE);
    let a = sb.file("a.yaml", FIN_30);
    sb.run(&[
        "apply",
        a.to_str().unwrap(),
        "--confirm-within",
        "1s",
        "--watcher",
        "fork",
    ])
    .expect(0);
    let status = sb.run(&["status", "--format", "json"]).expect(0).json();
    let pid = status["pending"]["change"]["watcher_pid"].as_u64().unwrap() as i32;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "30\n");
    sb.run(&exec).expect(0);
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "60\n");
    let status = sb.run(&["status", "--format", "json"]).expect(0).json();
    assert!(status["pending"].is_null(), "{status}");
}
