//! Saved plans: `sysprof diff PROFILE --out PLAN` then `sysprof apply PLAN` applies exactly the
//! reviewed change, or refuses with exit 10 and writes nothing when the host, the profile or the
//! plan file changed meanwhile. On a fake tree and for real in a throwaway network namespace.

mod common;

use common::{Netns, Sandbox, snapshot_dir};

const PLAN_STALE: i32 = 10;

const TREE: &[(&str, &str)] = &[
    ("net.ipv4.tcp_fin_timeout", "60"),
    ("net.core.somaxconn", "4096"),
    ("vm.swappiness", "60"),
];

const PROFILE: &str = "\
version: 1
name: planned
description: a profile applied through a saved plan
sysctls:
  net.ipv4.tcp_fin_timeout: 30
  net.core.somaxconn: 8192
  vm.swappiness: 10
";

/// A fake-tree sandbox with the profile written and a plan saved; returns (sandbox, profile,
/// plan path).
fn planned() -> (Sandbox, String, String) {
    let sb = Sandbox::fake(TREE);
    let profile = sb.file("planned.yaml", PROFILE).display().to_string();
    let plan = sb.dir.path().join("plan.json").display().to_string();
    let run = sb.run(&["diff", &profile, "--out", &plan]).expect(0);
    assert!(run.stdout.contains("plan saved to"), "{}", run.stdout);
    (sb, profile, plan)
}

/// Everything apply could touch: the tree, the persisted file's dir.
fn system(sb: &Sandbox) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut all = snapshot_dir(&sb.root());
    all.extend(snapshot_dir(&sb.dir.path().join("sysctl.d")));
    all
}

/// Applies `plan`, expecting exit 10 and no change to the tree or the persisted file; returns
/// stderr.
fn refused(sb: &Sandbox, plan: &str) -> String {
    let before = system(sb);
    let run = sb.run(&["apply", plan]).expect(PLAN_STALE);
    assert_eq!(system(sb), before, "a refused plan must write nothing");
    assert!(
        run.stderr.contains("the saved plan cannot be applied")
            && run.stderr.contains("nothing was written"),
        "{}",
        run.stderr
    );
    run.stderr
}

#[test]
fn saved_plan_records_target_profile_and_every_key() {
    let (sb, _profile, plan) = planned();
    let text = std::fs::read_to_string(&plan).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["format"], "sysprof-plan");
    assert_eq!(json["version"], 1);
    assert!(
        json["profile"]["path"]
            .as_str()
            .unwrap()
            .ends_with("planned.yaml")
    );
    assert_eq!(json["profile"]["sha256"].as_str().unwrap().len(), 64);
    assert!(
        json["target"]["kernel"]
            .as_str()
            .is_some_and(|k| !k.is_empty())
    );
    assert!(
        json["target"]["tree"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let keys: Vec<(&str, &str, &str)> = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap(),
                c["before"].as_str().unwrap(),
                c["after"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("net.core.somaxconn", "4096", "8192"),
            ("net.ipv4.tcp_fin_timeout", "60", "30"),
            ("vm.swappiness", "60", "10"),
        ]
    );
    assert!(
        json["persist"]["after"]
            .as_str()
            .unwrap()
            .contains("vm.swappiness = 10")
    );
    assert_eq!(json["seal"].as_str().unwrap().len(), 64);
    // The diff that saved it changed nothing.
    assert_eq!(sb.fake_value("vm.swappiness").trim(), "60");
}

#[test]
fn saved_plan_applies_exactly_and_only_once() {
    let (sb, _profile, plan) = planned();
    sb.run(&["apply", &plan, "--dry-run"]).expect(0);
    assert_eq!(sb.fake_value("vm.swappiness").trim(), "60", "dry run wrote");

    sb.run(&["apply", &plan]).expect(0);
    assert_eq!(sb.fake_value("vm.swappiness").trim(), "10");
    assert_eq!(sb.fake_value("net.core.somaxconn").trim(), "8192");
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout").trim(), "30");
    let persisted = std::fs::read_to_string(sb.persisted()).unwrap();
    assert!(
        persisted.contains("net.core.somaxconn = 8192"),
        "{persisted}"
    );
    let history = sb.run(&["history", "--format", "json"]).expect(0).json();
    assert_eq!(
        history["entries"].as_array().map(Vec::len),
        Some(1),
        "{history}"
    );

    // Applied once, its "before" values are gone: a second apply is stale, not a no-op.
    let err = refused(&sb, &plan);
    assert!(
        err.contains("is 4096") || err.contains("is 8192 now, the plan expected 4096"),
        "{err}"
    );
}

#[test]
fn saved_plan_refused_when_a_key_moved_since_review() {
    let (sb, _profile, plan) = planned();
    common::write_key(&sb.root(), "net.core.somaxconn", "1024");
    let err = refused(&sb, &plan);
    assert!(
        err.contains("net.core.somaxconn is 1024 now, the plan expected 4096"),
        "{err}"
    );
    // Back to what the review saw, the plan applies.
    common::write_key(&sb.root(), "net.core.somaxconn", "4096");
    sb.run(&["apply", &plan]).expect(0);
    assert_eq!(sb.fake_value("net.core.somaxconn").trim(), "8192");
}

#[test]
fn saved_plan_refused_when_the_file_was_altered() {
    let (sb, _profile, plan) = planned();
    let text = std::fs::read_to_string(&plan).unwrap();
    let altered = text.replacen("\"10\"", "\"100\"", 1);
    assert_ne!(text, altered, "the plan holds vm.swappiness' after value");
    std::fs::write(&plan, altered).unwrap();
    let err = refused(&sb, &plan);
    assert!(err.contains("seal does not verify"), "{err}");

    // A plan with its seal stripped is no better.
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["seal"] = serde_json::Value::String(String::new());
    std::fs::write(&plan, serde_json::to_string(&json).unwrap()).unwrap();
    assert!(refused(&sb, &plan).contains("seal does not verify"));

    // Garbage that claims to be a plan is refused as one, with the file named.
    std::fs::write(&plan, "{\"format\": \"sysprof-plan\", \"version\": ").unwrap();
    let err = refused(&sb, &plan);
    assert!(err.contains("plan.json is not a valid saved plan"), "{err}");
}

#[test]
fn saved_plan_refused_when_the_profile_changed() {
    let (sb, profile, plan) = planned();
    std::fs::write(
        &profile,
        PROFILE.replace("somaxconn: 8192", "somaxconn: 8193"),
    )
    .unwrap();
    let err = refused(&sb, &plan);
    assert!(
        err.contains("planned.yaml changed since the plan was made"),
        "{err}"
    );
}

#[test]
fn saved_plan_refused_when_the_persisted_file_changed() {
    let (sb, _profile, plan) = planned();
    std::fs::write(sb.persisted(), "vm.swappiness = 1\n").unwrap();
    let err = refused(&sb, &plan);
    assert!(
        err.contains("99-sysprof.conf changed since the plan was made"),
        "{err}"
    );
}

#[test]
fn saved_plan_refused_on_another_target_or_state_dir() {
    let (sb, _profile, plan) = planned();
    // The same state dir over another tree (another host's /proc/sys, say).
    let other_root = sb.dir.path().join("other-tree");
    for (key, value) in TREE {
        common::write_key(&other_root, key, value);
    }
    let mut args: Vec<String> = sb.args.clone();
    let at = args.iter().position(|a| a == "--root").unwrap();
    args[at + 1] = other_root.display().to_string();
    let out = std::process::Command::new(common::bin())
        .args(&args)
        .args(["apply", &plan])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(PLAN_STALE), "{stderr}");
    assert!(stderr.contains("it was made for"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(other_root.join("vm/swappiness"))
            .unwrap()
            .trim(),
        "60"
    );

    // Another state dir has another plan key: the seal does not verify there.
    let at = args.iter().position(|a| a == "--state-dir").unwrap();
    args[at + 1] = sb.dir.path().join("other-state").display().to_string();
    let at = args.iter().position(|a| a == "--root").unwrap();
    args[at + 1] = sb.root().display().to_string();
    let out = std::process::Command::new(common::bin())
        .args(&args)
        .args(["apply", &plan])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(PLAN_STALE), "{stderr}");
    assert!(stderr.contains("seal does not verify"), "{stderr}");
    assert_eq!(sb.fake_value("vm.swappiness").trim(), "60");
}

#[test]
fn saved_plan_goes_through_confirm_or_revert() {
    let (sb, _profile, plan) = planned();
    let run = sb
        .run(&[
            "apply",
            &plan,
            "--confirm-within",
            "5m",
            "--watcher",
            "fork",
        ])
        .expect(0);
    assert_eq!(
        sb.fake_value("vm.swappiness").trim(),
        "10",
        "{}",
        run.stderr
    );
    sb.run(&["confirm"]).expect(0);
    assert!(
        std::fs::read_to_string(sb.persisted())
            .unwrap()
            .contains("vm.swappiness = 10")
    );
}

/// The kernel's own values, for real, in a throwaway network namespace; a plan made for one
/// namespace is refused in another.
#[test]
fn saved_plan_applies_in_a_network_namespace_and_not_in_another() {
    let Some(ns) = Netns::create() else { return };
    let Some(other) = Netns::create() else { return };
    let sb = Sandbox::netns(&ns);
    let profile = sb
        .file(
            "ns.yaml",
            "version: 1\nname: ns\ndescription: namespaced keys\nsysctls:\n  net.ipv4.tcp_fin_timeout: 31\n  net.core.somaxconn: 1500\n",
        )
        .display()
        .to_string();
    let plan = sb.dir.path().join("ns-plan.json").display().to_string();
    sb.run(&["diff", &profile, "--out", &plan]).expect(0);
    assert_ne!(
        ns.read("net.ipv4.tcp_fin_timeout").trim(),
        "31",
        "diff wrote"
    );

    // The same state dir aimed at another namespace: refused, that namespace untouched.
    let mut elsewhere = Sandbox::netns(&other);
    elsewhere.args = sb.args.clone();
    let at = elsewhere.args.iter().position(|a| a == "--netns").unwrap();
    elsewhere.args[at + 1] = other.name.clone();
    let before = other.read("net.ipv4.tcp_fin_timeout");
    let run = elsewhere.run(&["apply", &plan]).expect(PLAN_STALE);
    assert!(run.stderr.contains("it was made for"), "{}", run.stderr);
    assert_eq!(other.read("net.ipv4.tcp_fin_timeout"), before);

    // Another writer in the namespace makes it stale; put back, it applies for real.
    let original = ns.read("net.ipv4.tcp_fin_timeout");
    ns.write("net.ipv4.tcp_fin_timeout", "45");
    let run = sb.run(&["apply", &plan]).expect(PLAN_STALE);
    assert!(
        run.stderr
            .contains("net.ipv4.tcp_fin_timeout is 45 now, the plan expected"),
        "{}",
        run.stderr
    );
    assert_ne!(
        ns.read("net.core.somaxconn").trim(),
        "1500",
        "a stale plan wrote"
    );
    ns.write("net.ipv4.tcp_fin_timeout", original.trim());
    sb.run(&["apply", &plan]).expect(0);
    assert_eq!(ns.read("net.ipv4.tcp_fin_timeout").trim(), "31");
    assert_eq!(ns.read("net.core.somaxconn").trim(), "1500");
}
