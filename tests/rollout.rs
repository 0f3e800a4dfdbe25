//! Cohorts and stages through the real binary: deterministic cohorts (checked against an
//! independent sha256), monotonic stages, `rollout plan`, and `apply --stage` on a fake tree.

mod common;

use common::{Sandbox, snapshot_dir};
use sha2::{Digest, Sha256};
use sysprof::error::exit;

const PROFILE: &str = "\
version: 1
name: staged
sysctls:
  net.ipv4.tcp_fin_timeout: 30
rollout:
  stages:
    - {name: canary, percent: 5}
    - {name: early, percent: 30}
    - {name: fleet, percent: 100}
";

fn hosts(n: usize) -> String {
    (0..n).map(|i| format!("host-{i:03} id-{i:03}\n")).collect()
}

/// The cohort as the README defines it, computed here without sysprof's code.
fn expected_cohort(fingerprint: &str, host_id: &str) -> f64 {
    let digest = Sha256::new()
        .chain_update(fingerprint.as_bytes())
        .chain_update(host_id.as_bytes())
        .finalize();
    let first = u64::from_be_bytes(digest[..8].try_into().unwrap());
    first as f64 / 2f64.powi(64) * 100.0
}

fn plan(sb: &Sandbox, profile: &str, hosts: &str) -> serde_json::Value {
    let p = sb.file("p.yaml", profile);
    let h = sb.file("hosts.txt", hosts);
    sb.run(&[
        "rollout",
        "plan",
        p.to_str().unwrap(),
        "--hosts",
        h.to_str().unwrap(),
        "--format",
        "json",
    ])
    .expect(0)
    .json()
}

#[test]
fn cohorts_are_deterministic_and_stages_only_grow() {
    let sb = Sandbox::fake(&[]);
    let first = plan(&sb, PROFILE, &hosts(400));
    let second = plan(&sb, PROFILE, &hosts(400));
    assert_eq!(
        first, second,
        "the same profile and hosts place every host the same way"
    );

    let fingerprint = first["plan"]["fingerprint"].as_str().unwrap();
    let placed = first["plan"]["hosts"].as_array().unwrap();
    for host in placed {
        let id = host["host_id"].as_str().unwrap();
        let cohort = host["cohort"].as_f64().unwrap();
        assert!(
            (cohort - expected_cohort(fingerprint, id)).abs() < 1e-9,
            "{host}"
        );
    }
    let stages = first["plan"]["stages"].as_array().unwrap();
    let totals: Vec<u64> = stages
        .iter()
        .map(|s| s["total"].as_u64().unwrap())
        .collect();
    assert!(totals.windows(2).all(|w| w[0] <= w[1]), "{totals:?}");
    assert_eq!(totals[2], 400);
    assert!(
        (5..=40).contains(&totals[0]),
        "about 5% of 400 in the canary: {totals:?}"
    );
    let percents = [5.0, 30.0, 100.0];
    for host in placed {
        let cohort = host["cohort"].as_f64().unwrap();
        let first_stage = percents.iter().position(|p| cohort < *p).unwrap();
        assert_eq!(host["stage"], stages[first_stage]["name"], "{host}");
    }

    // A new profile version reshuffles the cohorts (the canaries are not always the same hosts).
    let changed = plan(&sb, &PROFILE.replace("30\n", "31\n"), &hosts(400));
    assert_ne!(
        changed["plan"]["hosts"][0]["cohort"],
        first["plan"]["hosts"][0]["cohort"]
    );
}

#[test]
fn the_plan_shows_stages_and_hosts() {
    let sb = Sandbox::fake(&[]);
    let p = sb.file("p.yaml", PROFILE);
    let h = sb.file("hosts.txt", "# fleet\nweb1\nweb2\ndb1 0f3e\n");
    let run = sb
        .run(&[
            "rollout",
            "plan",
            p.to_str().unwrap(),
            "--hosts",
            h.to_str().unwrap(),
        ])
        .expect(0);
    let out = run.stdout;
    assert!(
        out.contains("rollout of staged (") && out.contains("3 host(s)"),
        "{out}"
    );
    assert!(
        out.contains("STAGE   PERCENT  WATCH  HOSTS  NEW HOSTS"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("fleet   100%") && l.contains(" 3 ")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("db1") && l.contains("0f3e")),
        "{out}"
    );

    let bad = sb.file("bad-hosts.txt", "web1\nweb1\n");
    let run = sb
        .run(&[
            "rollout",
            "plan",
            p.to_str().unwrap(),
            "--hosts",
            bad.to_str().unwrap(),
        ])
        .expect(exit::INVALID_INPUT);
    assert!(
        run.stderr.contains("line 2: host \"web1\" is listed twice"),
        "{}",
        run.stderr
    );
    let none = sb.file("none.yaml", "version: 1\nsysctls: {}\n");
    let run = sb
        .run(&[
            "rollout",
            "plan",
            none.to_str().unwrap(),
            "--hosts",
            h.to_str().unwrap(),
        ])
        .expect(exit::INVALID_INPUT);
    assert!(
        run.stderr.contains("has no `rollout` section"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_stage_no_host_lands_in_is_warned_about() {
    let sb = Sandbox::fake(&[]);
    // 3 hosts: a 5% canary almost surely gets none; whichever stages do, the warnings must
    // name exactly the empty ones before them.
    let json = plan(&sb, PROFILE, &hosts(3));
    let stages = json["plan"]["stages"].as_array().unwrap();
    let empty: Vec<&str> = stages
        .iter()
        .filter(|s| s["new_hosts"].as_array().unwrap().is_empty())
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    let warnings = json["plan"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), empty.len(), "{warnings:?}");
    for (warning, stage) in warnings.iter().zip(&empty) {
        let warning = warning.as_str().unwrap();
        assert!(
            warning.starts_with(&format!("stage {stage} (")) && warning.contains("gets no host"),
            "{warning}"
        );
    }
    assert!(empty.contains(&"canary"), "{stages:?}");
    // People see it on stderr, after the table.
    let p = sb.file("p.yaml", PROFILE);
    let h = sb.file("hosts.txt", &hosts(3));
    let run = sb
        .run(&[
            "rollout",
            "plan",
            p.to_str().unwrap(),
            "--hosts",
            h.to_str().unwrap(),
        ])
        .expect(0);
    assert!(
        run.stderr.contains("warning: stage canary (5% of 3 host(s)) gets no host: the first host(s) to change after it are the"),
        "{}",
        run.stderr
    );
    // Enough hosts for every stage: no warning.
    let json = plan(&sb, PROFILE, &hosts(400));
    assert_eq!(json["plan"]["warnings"], serde_json::json!([]));
}

#[test]
fn apply_stage_changes_only_hosts_in_the_stage() {
    let sb = Sandbox::fake(&[("net.ipv4.tcp_fin_timeout", "60")]);
    let placed = plan(&sb, PROFILE, &hosts(200));
    let pick = |stage: &str| -> String {
        placed["plan"]["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["stage"] == stage)
            .map(|h| h["host_id"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no host lands in {stage}"))
    };
    let (canary, early, fleet) = (pick("canary"), pick("early"), pick("fleet"));
    let p = sb.dir.path().join("p.yaml");
    let p = p.to_str().unwrap();
    let before = snapshot_dir(sb.dir.path());

    let out = sb.run(&[
        "apply",
        p,
        "--stage",
        "canary",
        "--host-id",
        &fleet,
        "--format",
        "json",
    ]);
    let json = out.expect(exit::NOT_IN_STAGE).json();
    assert_eq!(json["status"], "not_in_stage", "{json}");
    assert_eq!(json["stage"]["name"], "canary");
    assert_eq!(json["stage"]["in_stage"], false);
    assert_eq!(
        snapshot_dir(sb.dir.path()),
        before,
        "a host outside the stage changes nothing"
    );
    let human = sb
        .run(&["apply", p, "--stage", "early", "--host-id", &fleet])
        .expect(exit::NOT_IN_STAGE);
    assert!(
        human
            .stdout
            .contains(&format!("host {fleet} is not in stage `early`")),
        "{}",
        human.stdout
    );
    sb.run(&[
        "apply",
        p,
        "--stage",
        "canary",
        "--host-id",
        &early,
        "--dry-run",
    ])
    .expect(exit::NOT_IN_STAGE);

    // Monotonic: the canary host is in every stage; the early host from `early` on.
    let run = sb
        .run(&["apply", p, "--stage", "canary", "--host-id", &canary])
        .expect(0);
    assert!(
        run.stderr
            .contains(&format!("host {canary} is in stage `canary`")),
        "{}",
        run.stderr
    );
    assert_eq!(sb.fake_value("net.ipv4.tcp_fin_timeout"), "30\n");
    for stage in ["early", "fleet"] {
        let run = sb
            .run(&["apply", p, "--stage", stage, "--host-id", &canary])
            .expect(0);
        assert!(run.stdout.contains("in sync"), "{}", run.stdout);
    }
    sb.run(&["apply", p, "--stage", "fleet", "--host-id", &early])
        .expect(0);

    let typo = sb
        .run(&["apply", p, "--stage", "canry", "--host-id", &canary])
        .expect(exit::INVALID_INPUT);
    assert!(
        typo.stderr.contains("no stage `canry`") && typo.stderr.contains("did you mean `canary`"),
        "{}",
        typo.stderr
    );
}

#[test]
fn a_stage_watch_time_makes_apply_watch() {
    let sb = Sandbox::fake(&[("net.ipv4.tcp_fin_timeout", "60")]);
    let net = sb.dir.path().join("net");
    std::fs::create_dir_all(&net).unwrap();
    std::fs::write(net.join("netstat"), "TcpExt: ListenOverflows\nTcpExt: 0\n").unwrap();
    let p = sb.file("w.yaml", "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\nhealth:\n  gates:\n    TcpExt.ListenOverflows: {max_increase: 0}\nrollout:\n  stages:\n    - {name: all, percent: 100, watch: 1s}\n");
    let run = sb.run(&[
        "apply",
        p.to_str().unwrap(),
        "--stage",
        "all",
        "--host-id",
        "h1",
        "--proc-net",
        net.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let json = run.expect(0).json();
    assert_eq!(json["outcome"], "persisted", "{json}");
    assert_eq!(json["stage"]["name"], "all");
    assert_eq!(json["verdict"]["verdict"], "healthy");
    assert!(
        std::fs::read_to_string(sb.persisted())
            .unwrap()
            .contains("net.ipv4.tcp_fin_timeout = 30")
    );
}
