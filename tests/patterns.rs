//! Pattern keys in profiles (`net.ipv4.conf.*.rp_filter: 2`, as sysctl.d(5) globs): expanded
//! against the target when the profile is used, a key the profile names itself winning, the
//! pattern persisted as written, and undone like any key. For real in a network namespace with
//! its own interfaces, and offline.

mod common;

use std::process::Command;

use common::{Netns, Sandbox};

const PROFILE: &str = "\
version: 1
name: rp
sysctls:
  net.ipv4.conf.*.rp_filter:
    value: 2
    reason: loose reverse-path filtering on every interface, present and future
  net.ipv4.conf.lo.rp_filter: 0
  net.ipv4.conf.veth*.arp_ignore: 1
";

/// Adds a veth pair `name`/`name`p inside the namespace.
fn veth(ns: &Netns, name: &str) {
    let peer = format!("{name}p");
    let ok = Command::new("ip")
        .args(["netns", "exec", &ns.name, "ip", "link", "add", name])
        .args(["type", "veth", "peer", "name", &peer])
        .status()
        .unwrap()
        .success();
    assert!(ok, "ip link add {name} type veth in {}", ns.name);
}

#[test]
fn a_pattern_sets_every_matching_key_and_a_named_key_wins() {
    let Some(ns) = Netns::create() else { return };
    veth(&ns, "veth7");
    let sb = Sandbox::netns(&ns);
    let p = sb.file("rp.yaml", PROFILE);
    let p = p.to_str().unwrap();
    let before: Vec<String> = ["all", "default", "lo", "veth7", "veth7p"]
        .iter()
        .map(|i| ns.read(&format!("net.ipv4.conf.{i}.rp_filter")))
        .collect();

    let diff = sb.run(&["diff", p, "--format", "json"]).expect(0).json();
    let keys: Vec<&str> = diff["plan"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["pattern"] == "net.ipv4.conf.*.rp_filter")
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    for instance in ["all", "default", "veth7", "veth7p"] {
        let key = format!("net.ipv4.conf.{instance}.rp_filter");
        assert!(keys.contains(&key.as_str()), "{key} not in {keys:?}");
    }
    assert!(
        !keys.contains(&"net.ipv4.conf.lo.rp_filter"),
        "the named key is not the pattern's: {keys:?}"
    );

    sb.run(&["apply", p]).expect(0);
    for instance in ["all", "default", "veth7", "veth7p"] {
        assert_eq!(
            ns.read(&format!("net.ipv4.conf.{instance}.rp_filter"))
                .trim(),
            "2",
            "{instance}"
        );
    }
    assert_eq!(ns.read("net.ipv4.conf.lo.rp_filter").trim(), "0");
    assert_eq!(ns.read("net.ipv4.conf.veth7.arp_ignore").trim(), "1");
    assert_eq!(ns.read("net.ipv4.conf.all.arp_ignore").trim(), "0");

    // The persisted file keeps the patterns (boot sets the interfaces it finds then), once each.
    let persisted = std::fs::read_to_string(sb.persisted()).unwrap();
    assert_eq!(
        persisted.matches("net.ipv4.conf.*.rp_filter = 2").count(),
        1,
        "{persisted}"
    );
    assert!(
        persisted.contains("net.ipv4.conf.lo.rp_filter = 0"),
        "{persisted}"
    );
    assert!(
        persisted.contains("net.ipv4.conf.veth*.arp_ignore = 1"),
        "{persisted}"
    );
    assert!(!persisted.contains("veth7.rp_filter"), "{persisted}");
    // sysctl -p of it, in a fresh namespace with other interfaces, means the same.
    let Some(other) = Netns::create() else { return };
    veth(&other, "veth3");
    let out = Command::new("ip")
        .args(["netns", "exec", &other.name, "sysctl", "-p"])
        .arg(sb.persisted())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(other.read("net.ipv4.conf.veth3.rp_filter").trim(), "2");
    assert_eq!(other.read("net.ipv4.conf.veth3.arp_ignore").trim(), "1");

    // In sync now; a rollback restores every expanded key.
    sb.run(&["diff", p, "--exit-code"]).expect(0);
    sb.run(&["rollback"]).expect(0);
    let after: Vec<String> = ["all", "default", "lo", "veth7", "veth7p"]
        .iter()
        .map(|i| ns.read(&format!("net.ipv4.conf.{i}.rp_filter")))
        .collect();
    assert_eq!(after, before);
}

#[test]
fn a_pattern_that_matches_nothing_is_a_warning_and_offline_means_all_and_default() {
    let sb = Sandbox::fake(&[
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
        ("net.ipv4.conf.eth0.rp_filter", "0"),
        ("net.ipv4.conf.lo.rp_filter", "0"),
    ]);
    let p = sb.file("rp.yaml", PROFILE);
    let p = p.to_str().unwrap();
    let json = sb
        .run(&["validate", p, "--format", "json"])
        .expect(0)
        .json();
    let findings = json["profiles"][0]["findings"].as_array().unwrap();
    let unmatched: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| f["rule"] == "pattern-matches-nothing")
        .collect();
    assert_eq!(unmatched.len(), 1, "{findings:?}");
    assert_eq!(unmatched[0]["at"]["line"], 8);
    assert!(
        unmatched[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("net.ipv4.conf.veth*.arp_ignore matches no key")
    );
    // A value the pattern's keys cannot take is refused at the pattern's line, per key.
    let bad = sb.file("bad.yaml", &PROFILE.replace("value: 2", "value: 7"));
    let json = sb
        .run(&["validate", bad.to_str().unwrap(), "--format", "json"])
        .expect(3)
        .json();
    let errors: Vec<&str> = json["profiles"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error" && f["at"]["line"] == 4)
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert!(
        errors.contains(&"net.ipv4.conf.eth0.rp_filter")
            && errors.contains(&"net.ipv4.conf.all.rp_filter"),
        "{errors:?}"
    );
    // Offline (--kernel, no live tree): the `all` and `default` instances stand for it.
    let offline = sb
        .run(&[
            "validate",
            bad.to_str().unwrap(),
            "--kernel",
            "6.1",
            "--format",
            "json",
        ])
        .expect(3)
        .json();
    let keys: Vec<&str> = offline["profiles"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .filter_map(|f| f["key"].as_str())
        .collect();
    assert!(
        keys.contains(&"net.ipv4.conf.all.rp_filter")
            && keys.contains(&"net.ipv4.conf.default.rp_filter")
            && !keys.contains(&"net.ipv4.conf.eth0.rp_filter"),
        "{keys:?}"
    );
    // A pattern twice in one file (in two spellings) is refused like a key.
    let twice = sb.file(
        "twice.yaml",
        "version: 1\nsysctls:\n  net.ipv4.conf.*.rp_filter: 1\n  net/ipv4/conf/*/rp_filter: 2\n",
    );
    let run = sb.run(&["validate", twice.to_str().unwrap()]).expect(3);
    assert!(
        run.stderr
            .contains("net.ipv4.conf.*.rp_filter is set twice"),
        "{}",
        run.stderr
    );
}
