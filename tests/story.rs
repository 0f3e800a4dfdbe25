//! The core user story through the real binary: validate → diff → apply → history → rollback,
//! on a fake tree (global keys included) and for real inside a throwaway network namespace.

mod common;

use common::{Netns, Sandbox, host_value, profile, snapshot_dir};

/// Keys of the fake tree: namespaced ones plus global ones a namespace cannot write.
const TREE: &[(&str, &str)] = &[
    ("net.ipv4.tcp_fin_timeout", "60"),
    ("net.ipv4.tcp_keepalive_time", "7200"),
    ("net.ipv4.ip_local_port_range", "32768\t60999"),
    ("net.ipv4.ip_unprivileged_port_start", "1024"),
    ("net.core.somaxconn", "4096"),
    ("net.ipv4.tcp_mem", "287901\t383868\t575802"),
    ("vm.swappiness", "60"),
    ("fs.file-max", "2466186"),
];

const HOST_PROFILE: &str = "\
version: 1
name: host-tuning
description: a node profile with global keys
sysctls:
  vm.swappiness:
    value: 10
    reason: keep the page cache for the application
    source: admin-guide/sysctl/vm.rst#swappiness
  fs.file-max: 4000000
  net.ipv4.tcp_fin_timeout: 30
  net.ipv4.ip_local_port_range: [10240, 65535]
  net.core.somaxconn: 8192
";

#[test]
fn fake_tree_story_applies_records_and_rolls_back_byte_identically() {
    let sb = Sandbox::fake(TREE);
    let p = sb.file("host.yaml", HOST_PROFILE);
    let p = p.to_str().unwrap();
    let before = snapshot_dir(&sb.root());

    sb.run(&["validate", p]).expect(0);
    let diff = sb.run(&["diff", p, "--exit-code"]).expect(2);
    assert!(
        diff.stdout.contains("-vm.swappiness = 60") && diff.stdout.contains("+vm.swappiness = 10"),
        "{}",
        diff.stdout
    );
    assert!(
        diff.stdout.contains("5 key(s) to change"),
        "{}",
        diff.stdout
    );

    sb.run(&["apply", p, "--dry-run"]).expect(0);
    assert_eq!(
        snapshot_dir(&sb.root()),
        before,
        "--dry-run must change nothing"
    );
    assert!(!sb.persisted().exists());

    let applied = sb.run(&["apply", p, "--format", "json"]).expect(0).json();
    assert_eq!(applied["result"]["outcome"], "applied");
    assert_eq!(sb.fake_value("vm.swappiness"), "10\n");
    assert_eq!(
        sb.fake_value("net.ipv4.ip_local_port_range"),
        "10240\t65535\n"
    );
    let persisted = std::fs::read_to_string(sb.persisted()).unwrap();
    assert!(
        persisted.contains("vm.swappiness = 10\n")
            && persisted.contains("net.ipv4.ip_local_port_range = 10240 65535\n"),
        "{persisted}"
    );

    sb.run(&["diff", p, "--exit-code"]).expect(0);
    let again = sb.run(&["apply", p]).expect(0);
    assert!(again.stdout.contains("in sync"), "{}", again.stdout);

    let history = sb.run(&["history", "--format", "json"]).expect(0).json();
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "an in-sync apply records nothing");
    let record = &entries[0]["record"];
    assert_eq!(record["profile"]["name"], "host-tuning");
    assert_eq!(record["profile"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(record["changes"].as_array().unwrap().len(), 5);
    assert!(
        record["user"].as_str().unwrap().starts_with("0("),
        "{record}"
    );

    sb.run(&["rollback"]).expect(0);
    assert_eq!(
        snapshot_dir(&sb.root()),
        before,
        "rollback restores every key byte for byte"
    );
    assert!(
        !sb.persisted().exists(),
        "the persisted file did not exist before the apply"
    );
    let nothing = sb.run(&["rollback"]).expect(6);
    assert!(
        nothing.stderr.contains("nothing to roll back"),
        "{}",
        nothing.stderr
    );

    let history = sb.run(&["history", "--format", "json"]).expect(0).json();
    let rollback_id = history["entries"][1]["id"].as_str().unwrap().to_owned();
    sb.run(&["rollback", "--to", &rollback_id[..12]]).expect(0);
    assert_eq!(
        sb.fake_value("vm.swappiness"),
        "10\n",
        "undoing the rollback re-applies the profile"
    );
    assert_eq!(std::fs::read_to_string(sb.persisted()).unwrap(), persisted);
}

#[test]
fn stacked_applies_roll_back_one_at_a_time() {
    let sb = Sandbox::fake(TREE);
    let first = sb.file(
        "a.yaml",
        "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n  net.core.somaxconn: 8192\n",
    );
    let second = sb.file(
        "b.yaml",
        "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 20\n  net.ipv4.tcp_keepalive_time: 600\n",
    );
    sb.run(&["apply", first.to_str().unwrap()]).expect(0);
    sb.run(&["apply", second.to_str().unwrap()]).expect(0);
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "20\n");

    sb.run(&["rollback"]).expect(0);
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "30\n");
    assert_eq!(sb.fake_value("net.ipv4.tcp_keepalive_time"), "7200\n");
    assert_eq!(sb.fake_value("net.core.somaxconn"), "8192\n");
    assert!(
        std::fs::read_to_string(sb.persisted())
            .unwrap()
            .contains("profile: a")
    );

    sb.run(&["rollback"]).expect(0);
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "60\n");
    assert_eq!(sb.fake_value("net.core.somaxconn"), "4096\n");

    let history = sb.run(&["history"]).expect(0);
    assert_eq!(
        history.stdout.matches("rolled back").count(),
        2,
        "{}",
        history.stdout
    );
}

#[test]
fn invalid_profiles_change_nothing_and_exit_3() {
    let sb = Sandbox::fake(TREE);
    let bad = sb.file(
        "bad.yaml",
        "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n  net.ipv4.tcp_tw_recycle: 1\n",
    );
    let before = snapshot_dir(sb.dir.path());
    let run = sb.run(&["apply", bad.to_str().unwrap()]).expect(3);
    assert!(
        run.stderr.contains("error[key-removed]") && run.stderr.contains("bad.yaml:4:3"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("removed in 4.12"), "{}", run.stderr);
    assert_eq!(snapshot_dir(sb.dir.path()), before);
}

#[test]
fn missing_keys_block_apply_unless_optional() {
    let sb = Sandbox::fake(TREE);
    let p = sb.file(
        "p.yaml",
        "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n  net.ipv4.tcp_fastopen: 3\n",
    );
    let run = sb.run(&["apply", p.to_str().unwrap()]).expect(3);
    assert!(
        run.stderr
            .contains("error[key-absent]: net.ipv4.tcp_fastopen does not exist here"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "60\n");

    let optional = sb.file("o.yaml", "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n  net.ipv4.tcp_fastopen: {value: 3, optional: true}\n");
    sb.run(&["apply", optional.to_str().unwrap()]).expect(0);
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "30\n");
    assert!(
        std::fs::read_to_string(sb.persisted())
            .unwrap()
            .contains("-net.ipv4.tcp_fastopen = 3\n")
    );
}

#[test]
fn an_unreadable_key_blocks_apply_before_any_write() {
    let sb = Sandbox::fake(TREE);
    // The kernel's refusal, simulated on the fake tree: a directory where a key file should be.
    std::fs::create_dir_all(sb.root().join("vm/swappiness.d")).unwrap();
    std::fs::remove_file(sb.root().join("vm/swappiness")).unwrap();
    std::fs::rename(
        sb.root().join("vm/swappiness.d"),
        sb.root().join("vm/swappiness"),
    )
    .unwrap();
    let p = sb.file("p.yaml", "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n  net.core.somaxconn: 8192\n  vm.swappiness: 10\n");
    // Reading a directory fails, so the plan marks it unreadable and apply refuses before writing.
    let run = sb.run(&["apply", p.to_str().unwrap()]);
    assert_ne!(run.code, 0);
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "60\n");
    assert_eq!(sb.fake_value("net.core.somaxconn"), "4096\n");
}

#[test]
fn the_real_kernel_story_in_a_network_namespace() {
    let Some(ns) = Netns::create() else { return };
    let sb = Sandbox::netns(&ns);
    let p = profile("datacenter-client.yaml");
    let p = p.to_str().unwrap();
    let host_before = host_value("net.ipv4.tcp_fin_timeout");
    let keys: Vec<String> = {
        let plan = sb.run(&["diff", p, "--format", "json"]).expect(0).json();
        plan["plan"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["key"].as_str().unwrap().to_owned())
            .collect()
    };
    let before: Vec<String> = keys.iter().map(|k| ns.read(k)).collect();

    sb.run(&["apply", p]).expect(0);
    assert_eq!(ns.read("net.ipv4.tcp_fin_timeout"), "5\n");
    assert_eq!(ns.read("net.ipv4.ip_local_port_range"), "10240\t65535\n");
    assert_eq!(ns.read("net.ipv4.tcp_syn_retries"), "2\n");
    assert_eq!(
        host_value("net.ipv4.tcp_fin_timeout"),
        host_before,
        "the host namespace must not change"
    );
    assert!(
        sb.persisted().exists(),
        "--sysctl-d given explicitly, so the namespace apply persists there"
    );
    sb.run(&["diff", p, "--exit-code"]).expect(0);

    sb.run(&["rollback"]).expect(0);
    let after: Vec<String> = keys.iter().map(|k| ns.read(k)).collect();
    assert_eq!(after, before, "every value byte-identical to before");
    assert_eq!(host_value("net.ipv4.tcp_fin_timeout"), host_before);
}

#[test]
fn the_kernel_rejecting_the_nth_key_restores_the_earlier_ones() {
    let Some(ns) = Netns::create() else { return };
    let sb = Sandbox::netns(&ns);
    // A schema without tcp_syn_retries' bounds lets a bad value past validation to the kernel.
    let schema = sb.dir.path().join("schema");
    std::fs::create_dir_all(&schema).unwrap();
    std::fs::write(schema.join("rules.yaml"), "[]\n").unwrap();
    let keys = "- {key: net.ipv4.tcp_fin_timeout, shape: int, scope: netns, caveat: c, sources: [s]}\n\
                - {key: net.ipv4.tcp_keepalive_time, shape: int, scope: netns, caveat: c, sources: [s]}\n\
                - {key: net.ipv4.tcp_syn_retries, shape: int, scope: netns, caveat: c, sources: [s]}\n";
    std::fs::write(schema.join("keys.yaml"), keys).unwrap();
    let p = sb.file("p.yaml", "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n  net.ipv4.tcp_keepalive_time: 600\n  net.ipv4.tcp_syn_retries: 200\n");
    let before = [
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_syn_retries",
    ]
    .map(|k| ns.read(k));

    let run = sb
        .run(&[
            "--schema",
            schema.to_str().unwrap(),
            "apply",
            p.to_str().unwrap(),
        ])
        .expect(4);
    assert!(
        run.stderr.contains("net.ipv4.tcp_syn_retries")
            && run.stderr.contains("rejected the value"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("2 key(s) restored"), "{}", run.stderr);
    let after = [
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_syn_retries",
    ]
    .map(|k| ns.read(k));
    assert_eq!(after, before);
    let history = sb.run(&["history", "--format", "json"]).expect(0).json();
    assert!(
        history["entries"].as_array().unwrap().is_empty(),
        "an undone apply leaves no history entry"
    );
    assert!(!sb.persisted().exists());
}

#[test]
fn netns_without_explicit_sysctl_d_does_not_persist_to_the_host() {
    let Some(ns) = Netns::create() else { return };
    let state = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::bin())
        .args([
            "--netns",
            &ns.name,
            "--state-dir",
            state.path().to_str().unwrap(),
            "--format",
            "json",
            "apply",
        ])
        .arg(profile("k8s-pod.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["result"]["record"]["persist"].is_null(), "{json}");
    assert_eq!(ns.read("net.ipv4.ip_local_port_range"), "10240\t65535\n");
}

#[test]
fn one_way_writes_need_consent_and_rollback_leaves_them_in_place() {
    let sb = Sandbox::fake(&[("kernel.modules_disabled", "0"), ("vm.swappiness", "60")]);
    let locked = sb.file(
        "lock.yaml",
        "version: 1\nsysctls:\n  kernel.modules_disabled: 1\n  vm.swappiness: 10\n",
    );
    let diff = sb.run(&["diff", locked.to_str().unwrap()]).expect(0);
    assert!(
        diff.stdout
            .contains("one-way: kernel.modules_disabled = 1 cannot be undone until reboot"),
        "{}",
        diff.stdout
    );

    let refused = sb.run(&["apply", locked.to_str().unwrap()]).expect(3);
    assert!(
        refused.stderr.contains("--allow-irreversible"),
        "{}",
        refused.stderr
    );
    assert_eq!(sb.fake_value("kernel.modules_disabled"), "0\n");
    assert_eq!(sb.fake_value("vm.swappiness"), "60\n");
    sb.run(&["apply", "--dry-run", locked.to_str().unwrap()])
        .expect(3);

    sb.run(&["apply", "--allow-irreversible", locked.to_str().unwrap()])
        .expect(0);
    assert_eq!(sb.fake_value("kernel.modules_disabled"), "1\n");

    let back = sb.run(&["rollback"]).expect(0);
    assert!(
        back.stdout
            .contains("not restored: kernel.modules_disabled: left at 1 until reboot"),
        "{}",
        back.stdout
    );
    assert_eq!(sb.fake_value("kernel.modules_disabled"), "1\n");
    assert_eq!(sb.fake_value("vm.swappiness"), "60\n");
}
