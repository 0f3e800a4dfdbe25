//! The demo, GitOps and Kubernetes examples, run or checked for real: examples/demo.sh builds
//! (honouring CARGO_TARGET_DIR) and tours in a throwaway namespace; the CI script validates every
//! shipped profile for the fleet and publishes JSON plans (and fails on a broken profile); the
//! pod example holds exactly what `k8s pod-sysctls` renders; the DaemonSet is what its comments
//! claim and its embedded node profile validates.

mod common;

use std::process::Command;

use common::{Sandbox, bin, repo};
use serde::Deserialize;
use sysprof::error::exit;

fn run_gitops(profiles: &std::path::Path, out: &std::path::Path) -> std::process::Output {
    run_gitops_with(profiles, out, &repo().join("examples/kubernetes"))
}

fn run_gitops_with(
    profiles: &std::path::Path,
    out: &std::path::Path,
    manifests: &std::path::Path,
) -> std::process::Output {
    Command::new(repo().join("examples/gitops/validate-fleet.sh"))
        .arg(profiles)
        .arg(out)
        .arg(manifests)
        .env("SYSPROF", bin())
        .output()
        .unwrap()
}

#[test]
fn the_gitops_job_validates_the_fleet_and_publishes_plans() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = run_gitops(&repo().join("profiles"), &out);
    let log =
        String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{log}");
    assert!(
        log.contains("validate: kernel 5.4, Kubernetes 1.29"),
        "{log}"
    );
    let plan: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("plan-lvs-dr-backend.json")).unwrap(),
    )
    .unwrap();
    let stages: Vec<&str> = plan["plan"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["canary", "early", "fleet"]);
    assert_eq!(
        plan["plan"]["hosts"].as_array().unwrap().len(),
        10,
        "hosts.txt lists 10 hosts"
    );
    let validated: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("validate-kernel6.6-k8s1.30.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(validated["ok"], true);
    assert!(out.join("pod-sysctls-k8s-pod-k8s1.29.json").exists());
    assert!(
        !out.join("plan-k8s-pod.json").exists(),
        "the pod profile has no rollout section"
    );

    // A profile that is wrong for part of the fleet fails the job, naming the place.
    let broken = dir.path().join("profiles");
    std::fs::create_dir_all(&broken).unwrap();
    for entry in std::fs::read_dir(repo().join("profiles")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, broken.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        broken.join("old-nat.yaml"),
        "version: 1\nsysctls:\n  net.ipv4.tcp_tw_recycle: 1\n",
    )
    .unwrap();
    let run = run_gitops(&broken, &dir.path().join("out2"));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("old-nat.yaml:3:3"), "{stderr}");
}

#[test]
fn the_gitops_job_checks_the_manifests_before_kubectl_apply() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = run_gitops(&repo().join("profiles"), &out);
    let log =
        String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{log}");
    assert!(
        log.contains("k8s check: kernel 5.4, Kubernetes 1.29"),
        "{log}"
    );
    let checked: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("k8s-check-kernel6.6-k8s1.30.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(checked["ok"], true, "{checked:#}");
    let kinds: Vec<&str> = checked["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["workloads"].as_array().unwrap())
        .map(|w| w["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"Pod") && kinds.contains(&"DaemonSet"),
        "{kinds:?}"
    );

    // A manifest that a kubelet of the fleet would reject fails the job, naming the place.
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::copy(
        repo().join("tests/manifests/bad/unsafe.yaml"),
        manifests.join("ingest.yaml"),
    )
    .unwrap();
    let run = run_gitops_with(
        &repo().join("profiles"),
        &dir.path().join("out2"),
        &manifests,
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(stderr.contains("error[k8s-unsafe-not-allowed]"), "{stderr}");
    assert!(stderr.contains("ingest.yaml:14:19"), "{stderr}");
}

#[derive(Deserialize)]
struct Doc(serde_json::Value);

fn yaml_docs(path: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Doc::deserialize(d).unwrap().0)
        .collect()
}

#[test]
fn the_pod_example_holds_what_pod_sysctls_renders() {
    let profile = repo().join("profiles/k8s-pod.yaml");
    let sb = Sandbox::fake(&[]);
    let rendered = sb
        .run(&[
            "k8s",
            "pod-sysctls",
            profile.to_str().unwrap(),
            "--k8s",
            "1.29",
            "--format",
            "json",
        ])
        .expect(0)
        .json();
    let pod = &yaml_docs("examples/kubernetes/pod-sysctls.yaml")[0];
    assert_eq!(
        pod["spec"]["securityContext"]["sysctls"], rendered["sysctls"],
        "regenerate the example"
    );
    assert_eq!(rendered["allowedUnsafeSysctls"], serde_json::json!([]));

    let older = sb
        .run(&[
            "k8s",
            "pod-sysctls",
            profile.to_str().unwrap(),
            "--k8s",
            "1.28",
        ])
        .expect(0)
        .stdout;
    let docs: Vec<serde_json::Value> = serde_norway::Deserializer::from_str(&older)
        .map(|d| Doc::deserialize(d).unwrap().0)
        .collect();
    assert_eq!(docs[1]["kind"], "KubeletConfiguration");
    let unsafe_keys = docs[1]["allowedUnsafeSysctls"].as_array().unwrap();
    assert!(
        unsafe_keys.contains(&"net.ipv4.tcp_keepalive_time".into()),
        "{older}"
    );
    assert!(
        !unsafe_keys.contains(&"net.ipv4.ip_local_port_range".into()),
        "safe since 1.4"
    );
    assert_eq!(
        docs[0]["securityContext"]["sysctls"][0]["value"],
        "10240 65535"
    );

    let node_keys = sb.file(
        "node.yaml",
        "version: 1\nsysctls:\n  vm.swappiness: 10\n  net.ipv4.tcp_fin_timeout: 30\n",
    );
    let run = sb
        .run(&["k8s", "pod-sysctls", node_keys.to_str().unwrap()])
        .expect(exit::INVALID_INPUT);
    assert!(
        run.stderr.contains("error[pod-not-namespaced]") && run.stderr.contains("vm.swappiness"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "nothing rendered for a refused profile"
    );
}

#[test]
fn the_daemonset_is_privileged_on_the_host_network_and_watches_canary_nodes() {
    let docs = yaml_docs("examples/kubernetes/node-daemonset.yaml");
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["hostNetwork"], true);
    assert_eq!(spec["nodeSelector"]["sysprof.io/stage"], "canary");
    // The image has no shell: sysprof is the init container's entrypoint, given only args.
    let init = &spec["initContainers"][0];
    assert_eq!(init["securityContext"]["privileged"], true);
    assert!(
        init["command"].is_null(),
        "the image's entrypoint is sysprof"
    );
    let args: Vec<&str> = init["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let at = args.iter().position(|a| *a == "apply").unwrap();
    assert_eq!(args[at + 1], "/etc/sysprof/profiles/node.yaml");
    assert!(
        args.contains(&"--watch") && args.contains(&"$(NODE_NAME)"),
        "{args:?}"
    );
    for container in spec["containers"].as_array().unwrap() {
        let image = container["image"].as_str().unwrap();
        assert!(
            !image.contains("sysprof"),
            "only the init container runs sysprof: {image}"
        );
    }
    // The args work as given: a dry run of them on a fake tree.
    let sb = Sandbox::fake(&[
        ("net.core.somaxconn", "4096"),
        ("net.ipv4.tcp_max_syn_backlog", "1024"),
    ]);
    let mut dry: Vec<&str> = args
        .iter()
        .map(|a| if *a == "$(NODE_NAME)" { "node-1" } else { a })
        .collect();
    dry.retain(|a| *a != "/etc/sysprof/profiles/node.yaml");
    // The sandbox gives its own --color.
    let color = dry.iter().position(|a| *a == "--color").unwrap();
    dry.drain(color..color + 2);
    let config = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let node = sb.file("node.yaml", config["data"]["node.yaml"].as_str().unwrap());
    let node = node.display().to_string();
    dry.insert(at - 1, &node);
    dry.push("--dry-run");
    let run = sb.run(&dry).expect(0);
    assert!(run.stdout.contains("net.core.somaxconn"), "{}", run.stdout);

    let config = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let sb = Sandbox::fake(&[]);
    let node = sb.file("node.yaml", config["data"]["node.yaml"].as_str().unwrap());
    sb.run(&["validate", "--kernel", "6.1", node.to_str().unwrap()])
        .expect(0);
}

/// The target triple of this toolchain.
fn host_triple() -> String {
    let out = Command::new("rustc").arg("-vV").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap()
        .to_owned()
}

/// examples/demo.sh builds through cargo and takes the binary's path from cargo's own report, so
/// CARGO_TARGET_DIR (and a `--target` layout) cannot lose it; it shows the build's progress, runs
/// the tour in a throwaway network namespace that it removes, and ends saying where the binary
/// is. It builds here with scripts/build-static's target dir and flags, so the suite compiles
/// that release binary once (tests/static_build.rs and tests/image.rs use the same).
#[test]
fn the_demo_builds_where_cargo_says_and_tours_in_a_namespace() {
    let Some(probe) = common::Netns::create() else {
        return;
    };
    drop(probe);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
        .join("static-build");
    let host = host_triple();
    let keys = [
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_syn_retries",
        "net.ipv4.ip_local_port_range",
    ];
    let before: Vec<String> = keys.iter().map(|k| common::host_value(k)).collect();
    let run = Command::new(repo().join("examples/demo.sh"))
        .args(["--release", "--target", &host])
        .env("CARGO_TARGET_DIR", &target)
        .env(
            "RUSTFLAGS",
            " -C target-feature=+crt-static -C relocation-model=static",
        )
        .env_remove("SYSPROF")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{stdout}\n--- stderr\n{stderr}");
    assert!(
        stderr.contains(&format!("== cargo build --release --target {host}"))
            && stderr.contains("Finished `release` profile"),
        "build progress is shown\n{stderr}"
    );
    let bin = target.join(&host).join("release/sysprof");
    assert!(
        stdout.ends_with(&format!(
            "sysprof is at {}\nput it on PATH with:  cargo install --path .    (or: export PATH=\"{}:$PATH\")\n",
            bin.display(),
            bin.parent().unwrap().display()
        )),
        "{stdout}"
    );
    for line in [
        "== validate every shipped profile for this kernel",
        "applied datacenter-client (9 key(s)), persisted to",
        "restored the state from before",
    ] {
        assert!(stdout.contains(line), "no {line:?}\n{stdout}");
    }
    let after_apply = stdout.split("== the namespace after\n").nth(1).unwrap();
    assert!(
        after_apply.starts_with("  tcp_fin_timeout        5\n  tcp_syn_retries        2\n"),
        "{after_apply}"
    );
    let ns = stdout
        .split("== the namespace ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap();
    assert!(ns.starts_with("sysprof-demo-"), "{ns}");
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(ns),
        "{ns} was removed"
    );
    let after: Vec<String> = keys.iter().map(|k| common::host_value(k)).collect();
    assert_eq!(before, after, "the host's sysctls are untouched");
}
