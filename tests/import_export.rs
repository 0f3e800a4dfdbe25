//! Adopt and leave: `import` (sysctl.d semantics, checked against `sysctl -p` in real network
//! namespaces), `import --system` (boot order), `export`, boot-precedence warnings in `diff` and
//! `apply`, and drift in `status`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Netns, Sandbox};
use sysprof::profile::Profile;
use sysprof::profile::key::SysctlKey;

const BASE_CONF: &str = "\
# base settings, procps and systemd syntax mixed
; a semicolon comment
net.ipv4.tcp_fin_timeout=33
 net/ipv4/tcp_keepalive_time = 600
net.ipv4.conf.*.rp_filter = 2
-net.ipv4.conf.all.rp_filter
net.ipv4.ip_local_port_range = 20000   40001
-net.ipv4.tcp_fastopen = 3
net.core.somaxconn = 1024
";

const OVERRIDE_CONF: &str = "\
net.ipv4.tcp_fin_timeout = 34
net.ipv4.conf.*.arp_announce = 2
net/ipv4/conf/lo/arp_announce = 1
net.ipv4.tcp_syn_retries = 4
";

/// `sysctl -a` for net.* inside a namespace: procps' own view, independent of sysprof.
fn sysctl_all(ns: &Netns) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "sysctl", "-a", "-r", "^net\\."])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn sysctl_p(ns: &Netns, files: &[&Path]) {
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "sysctl", "-p"])
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sysctl -p: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn differing(a: &str, b: &str) -> Vec<String> {
    a.lines()
        .zip(b.lines())
        .filter(|(x, y)| x != y)
        .map(|(x, _)| x.to_owned())
        .collect()
}

fn setting<'p>(profile: &'p Profile, key: &str) -> &'p sysprof::profile::Setting {
    profile
        .get(&SysctlKey::parse(key).unwrap())
        .unwrap_or_else(|| panic!("{key} not in the profile"))
}

#[test]
fn import_then_apply_matches_sysctl_p_of_the_same_files() {
    let (Some(a), Some(b), Some(fresh)) = (Netns::create(), Netns::create(), Netns::create())
    else {
        return;
    };
    let sb = Sandbox::netns(&a);
    let base = sb.file("10-base.conf", BASE_CONF);
    let over = sb.file("20-override.conf", OVERRIDE_CONF);
    let profile_path = sb.dir.path().join("imported.yaml");
    let run = sb
        .run(&[
            "import",
            base.to_str().unwrap(),
            over.to_str().unwrap(),
            "-o",
            profile_path.to_str().unwrap(),
        ])
        .expect(0);
    assert!(run.stdout.is_empty(), "-o writes the file only");

    let profile = Profile::load(&profile_path).unwrap();
    let fin = setting(&profile, "net.ipv4.tcp_fin_timeout");
    assert_eq!(
        fin.value.to_string(),
        "34",
        "later files override earlier ones"
    );
    assert_eq!(
        fin.source.as_deref(),
        Some(format!("{}:1", over.display()).as_str())
    );
    assert!(setting(&profile, "net.ipv4.tcp_fastopen").optional);
    let lo = setting(&profile, "net.ipv4.conf.lo.arp_announce");
    assert_eq!(lo.value.to_string(), "1", "an explicit key beats the glob");
    let glob = setting(&profile, "net.ipv4.conf.default.rp_filter");
    assert!(
        glob.source
            .as_deref()
            .unwrap()
            .ends_with(":5 (net.ipv4.conf.*.rp_filter)"),
        "{:?}",
        glob.source
    );
    assert!(
        profile
            .get(&SysctlKey::parse("net.ipv4.conf.all.rp_filter").unwrap())
            .is_none(),
        "-key keeps the glob off it"
    );

    sb.run(&["apply", profile_path.to_str().unwrap()]).expect(0);
    sysctl_p(&b, &[&base, &over]);

    let (in_a, in_b, untouched) = (sysctl_all(&a), sysctl_all(&b), sysctl_all(&fresh));
    assert_eq!(
        differing(&in_a, &in_b),
        Vec::<String>::new(),
        "every net.* key matches between sysprof and sysctl -p"
    );
    let changed = differing(&in_a, &untouched);
    for expected in [
        "net.ipv4.tcp_fin_timeout = 34",
        "net.ipv4.conf.lo.rp_filter = 2",
        "net.ipv4.conf.lo.arp_announce = 1",
        "net.ipv4.conf.all.arp_announce = 2",
        "net.ipv4.ip_local_port_range = 20000\t40001",
        "net.core.somaxconn = 1024",
    ] {
        assert!(
            changed.iter().any(|l| l == expected),
            "{expected} in {changed:#?}"
        );
    }
    assert!(
        !changed
            .iter()
            .any(|l| l.starts_with("net.ipv4.conf.all.rp_filter"))
    );
}

#[test]
fn the_persisted_file_is_what_sysctl_p_and_import_read() {
    let (Some(a), Some(b)) = (Netns::create(), Netns::create()) else {
        return;
    };
    let sb = Sandbox::netns(&a);
    let profile = common::profile("datacenter-client.yaml");
    sb.run(&["apply", profile.to_str().unwrap()]).expect(0);
    sysctl_p(&b, &[&sb.persisted()]);
    assert_eq!(
        differing(&sysctl_all(&a), &sysctl_all(&b)),
        Vec::<String>::new()
    );

    // Importing the persisted file gives back the profile's values.
    let run = sb
        .run(&["import", sb.persisted().to_str().unwrap()])
        .expect(0);
    let again = sb.file("again.yaml", &run.stdout);
    sb.run(&["diff", again.to_str().unwrap(), "--exit-code"])
        .expect(0);
}

#[test]
fn import_system_follows_systemd_order_masking_and_sysctl_conf_last() {
    let sb = Sandbox::fake(&[
        ("net.ipv4.tcp_fin_timeout", "60"),
        ("net.ipv4.tcp_keepalive_time", "7200"),
        ("net.core.somaxconn", "4096"),
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.eth0.rp_filter", "0"),
    ]);
    let boot = sb.dir.path().join("boot");
    let put = |rel: &str, text: &str| {
        let path = boot.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    put(
        "usr/lib/sysctl.d/50-default.conf",
        "net.core.somaxconn = 128\nnet.ipv4.conf.*.rp_filter = 1\n",
    );
    put("etc/sysctl.d/50-default.conf", "net.core.somaxconn = 256\n");
    put(
        "run/sysctl.d/60-run.conf",
        "net.ipv4.tcp_fin_timeout = 20\n",
    );
    put(
        "usr/local/lib/sysctl.d/10-local.conf",
        "net.ipv4.tcp_fin_timeout = 10\nnet.ipv4.conf.*.rp_filter = 2\n",
    );
    put("etc/sysctl.conf", "net.ipv4.tcp_keepalive_time = 300\n");
    let run = sb
        .run(&[
            "import",
            "--system",
            "--boot-root",
            boot.to_str().unwrap(),
            "--format",
            "json",
        ])
        .expect(0);
    let json = run.json();
    let files: Vec<String> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().replace(&boot.display().to_string(), ""))
        .collect();
    assert_eq!(
        files,
        [
            "/usr/local/lib/sysctl.d/10-local.conf",
            "/etc/sysctl.d/50-default.conf",
            "/run/sysctl.d/60-run.conf",
            "/etc/sysctl.conf"
        ],
        "sorted by name, /etc masks /usr/lib, sysctl.conf last"
    );
    let settings: Vec<(String, String, String)> = json["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["key"].as_str().unwrap().to_owned(),
                s["value"].as_str().unwrap().to_owned(),
                s["source"]
                    .as_str()
                    .unwrap()
                    .replace(&boot.display().to_string(), ""),
            )
        })
        .collect();
    let expect = |k: &str, v: &str, src: &str| (k.to_owned(), v.to_owned(), src.to_owned());
    assert_eq!(
        settings,
        [
            expect(
                "net.core.somaxconn",
                "256",
                "/etc/sysctl.d/50-default.conf:1"
            ),
            // The glob stays one pattern key (where its first match sorts).
            expect(
                "net.ipv4.conf.*.rp_filter",
                "2",
                "/usr/local/lib/sysctl.d/10-local.conf:2"
            ),
            expect(
                "net.ipv4.tcp_fin_timeout",
                "20",
                "/run/sysctl.d/60-run.conf:1"
            ),
            expect("net.ipv4.tcp_keepalive_time", "300", "/etc/sysctl.conf:1"),
        ]
    );
    // The YAML in the JSON output is the profile itself, and it loads back.
    let path = sb.file("system.yaml", json["profile"].as_str().unwrap());
    sb.run(&["validate", path.to_str().unwrap()]).expect(0);
}

#[test]
fn malformed_lines_are_errors_naming_file_and_line() {
    let sb = Sandbox::fake(&[("net.ipv4.tcp_fin_timeout", "60")]);
    let out = sb.dir.path().join("out.yaml");
    for (text, at, message) in [
        (
            "net.ipv4.tcp_fin_timeout = 30\nnot an assignment\n",
            ":2:1",
            "is not an assignment",
        ),
        (
            "# ok\n  net.ipv4.tcp_fin_timeout = 010\n",
            ":2:3",
            "not a plain decimal",
        ),
        ("../../etc/passwd = 1\n", ":1:1", "leave the sysctl root"),
    ] {
        let conf = sb.file("bad.conf", text);
        let run = sb
            .run(&[
                "import",
                conf.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ])
            .expect(3);
        assert!(
            run.stderr
                .contains(&format!("--> {}{at}\n", conf.display()))
                && run.stderr.contains(message),
            "{text:?}: {}",
            run.stderr
        );
        assert!(!out.exists(), "nothing is written on error");
    }
}

#[test]
fn export_writes_the_running_values_as_a_profile() {
    let sb = Sandbox::fake(&[
        ("net.ipv4.tcp_fin_timeout", "30"),
        ("net.ipv4.tcp_syncookies", "1"),
        ("net.ipv4.ip_local_port_range", "10240\t65535"),
        ("net.core.somaxconn", "4096"),
        ("vm.swappiness", "10"),
    ]);
    let all = sb.run(&["export"]).expect(0);
    assert!(
        all.stderr.contains("note: 5 key(s) exported"),
        "{}",
        all.stderr
    );
    let prefixed = sb.run(&["export", "--prefix", "net.ipv4"]).expect(0);
    assert!(
        prefixed
            .stdout
            .contains("  net.ipv4.ip_local_port_range: [10240, 65535]\n")
    );
    assert!(!prefixed.stdout.contains("somaxconn"));
    let changed = sb
        .run(&["export", "--non-default", "--kernel", "6.1"])
        .expect(0);
    let path = sb.file("changed.yaml", &changed.stdout);
    let profile = Profile::load(&path).unwrap();
    let keys: Vec<String> = profile.settings.keys().map(|k| k.to_string()).collect();
    assert_eq!(
        keys,
        [
            "net.ipv4.ip_local_port_range",
            "net.ipv4.tcp_fin_timeout",
            "vm.swappiness"
        ],
        "only values differing from the schema defaults"
    );
    sb.run(&["diff", path.to_str().unwrap(), "--exit-code"])
        .expect(0);
    let missing = sb.run(&["export", "--prefix", "net.nope"]).expect(3);
    assert!(
        missing.stderr.contains("no such key or directory"),
        "{}",
        missing.stderr
    );
}

#[test]
fn export_of_a_tuned_namespace_adopts_into_a_fresh_one() {
    let (Some(a), Some(b)) = (Netns::create(), Netns::create()) else {
        return;
    };
    let sa = Sandbox::netns(&a);
    sa.run(&[
        "apply",
        common::profile("datacenter-client.yaml").to_str().unwrap(),
    ])
    .expect(0);
    let exported = sa
        .run(&["export", "--prefix", "net", "--non-default"])
        .expect(0);
    let sb = Sandbox::netns(&b);
    let path = sb.file("adopted.yaml", &exported.stdout);
    sb.run(&["apply", path.to_str().unwrap()]).expect(0);
    assert_eq!(
        differing(&sysctl_all(&a), &sysctl_all(&b)),
        Vec::<String>::new()
    );
}

#[test]
fn diff_and_apply_warn_when_a_later_boot_file_overrides_a_key() {
    let sb = Sandbox::fake(&[
        ("net.ipv4.tcp_fin_timeout", "60"),
        ("net.core.somaxconn", "4096"),
    ]);
    let boot = sb.dir.path().join("boot");
    std::fs::create_dir_all(boot.join("etc/sysctl.d")).unwrap();
    std::fs::write(
        boot.join("etc/sysctl.d/10-early.conf"),
        "net.core.somaxconn = 128\n",
    )
    .unwrap();
    std::fs::write(
        boot.join("etc/sysctl.d/99-zz-late.conf"),
        "# late\nnet.ipv4.tcp_fin_timeout = 60\n",
    )
    .unwrap();
    std::fs::write(boot.join("etc/sysctl.conf"), "-net.core.somaxconn\n").unwrap();
    let p = sb.file(
        "p.yaml",
        "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n  net.core.somaxconn: 8192\n",
    );
    let (p, boot) = (p.to_str().unwrap(), boot.to_str().unwrap());

    let diff = sb.run(&["--boot-root", boot, "diff", p]).expect(0);
    for expected in [
        "warning[boot-override]: at boot ",
        "etc/sysctl.d/99-zz-late.conf:2 sets net.ipv4.tcp_fin_timeout = 60 after 99-sysprof.conf, overriding this profile's 30",
        "etc/sysctl.conf:1 excludes net.core.somaxconn",
    ] {
        assert!(
            diff.stderr.contains(expected),
            "{expected}\n{}",
            diff.stderr
        );
    }
    assert!(!diff.stderr.contains("10-early.conf"), "{}", diff.stderr);
    let json = sb
        .run(&["--boot-root", boot, "diff", p, "--format", "json"])
        .expect(0)
        .json();
    assert_eq!(json["boot_overrides"].as_array().unwrap().len(), 2);
    let applied = sb.run(&["--boot-root", boot, "apply", p]).expect(0);
    assert!(
        applied.stderr.contains("99-zz-late.conf:2"),
        "{}",
        applied.stderr
    );
    // Without --boot-root a fake tree is never checked against the host's files.
    let quiet = sb.run(&["diff", p]).expect(0);
    assert!(!quiet.stderr.contains("boot-override"), "{}", quiet.stderr);
}

#[test]
fn status_names_keys_another_writer_changed_since_the_last_apply() {
    let sb = Sandbox::fake(&[
        ("net.ipv4.tcp_fin_timeout", "60"),
        ("net.core.somaxconn", "4096"),
        ("net.ipv4.tcp_keepalive_time", "7200"),
    ]);
    let first = sb.file(
        "a.yaml",
        "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: 30\n",
    );
    let second = sb.file(
        "b.yaml",
        "version: 1\nsysctls:\n  net.core.somaxconn: 8192\n",
    );
    sb.run(&["apply", first.to_str().unwrap()]).expect(0);
    // The second profile keeps what the first set (by default it would release it).
    sb.run(&["apply", second.to_str().unwrap(), "--keep-released"])
        .expect(0);
    let clean = sb.run(&["status", "--format", "json"]).expect(0).json();
    assert_eq!(clean["drift"], serde_json::json!([]));
    assert_eq!(clean["disagreements"], serde_json::json!([]), "{clean}");

    // Another writer changes a key set by the first apply, not the last one.
    common::write_key(&sb.root(), "net.ipv4.tcp_fin_timeout", "45");
    let status = sb.run(&["status"]).expect(0);
    assert!(
        status
            .stdout
            .contains("drift: net.ipv4.tcp_fin_timeout is 45 (sysprof set 30 in #1)"),
        "{}",
        status.stdout
    );
    let json = sb.run(&["status", "--format", "json"]).expect(0).json();
    assert_eq!(json["drift"][0]["key"], "net.ipv4.tcp_fin_timeout");
    assert_eq!(json["drift"].as_array().unwrap().len(), 1);
}

/// sysctl.d has no inline comments: `31 # shorter` reaches the kernel whole. The import warns
/// for each such line (`warning[inline-comment]`, FILE:LINE) and imports the value without the
/// comment; for numbers that is what the kernel keeps anyway (its number parser stops before
/// the `#`, checked here against the kernel itself through `sysctl -p`), for text it is what
/// the author meant. Text values keep their spaces and validate.
#[test]
fn inline_comments_are_warned_about_and_left_out_of_the_value() {
    let Some(ns) = Netns::create() else { return };
    let sb = Sandbox::netns(&ns);
    let numbers = "net.ipv4.tcp_fin_timeout = 31 # shorter than the default\nnet.ipv4.ip_local_port_range = 20000 40001 ; wide\n";
    let text = "kernel.core_pattern = |/usr/lib/systemd/systemd-coredump %P %u # pipe\nnet.ipv4.tcp_congestion_control = reno # the safe one\n";
    let conf = sb.file("inline.conf", &format!("{numbers}{text}"));
    let run = sb.run(&["import", conf.to_str().unwrap()]).expect(0);
    for (line, written, imported) in [
        (
            1,
            "31 # shorter than the default",
            "net.ipv4.tcp_fin_timeout = 31,",
        ),
        (
            2,
            "20000 40001 ; wide",
            "net.ipv4.ip_local_port_range = 20000 40001,",
        ),
        (
            3,
            "|/usr/lib/systemd/systemd-coredump %P %u # pipe",
            "kernel.core_pattern = |/usr/lib/systemd/systemd-coredump %P %u,",
        ),
        (
            4,
            "reno # the safe one",
            "net.ipv4.tcp_congestion_control = reno,",
        ),
    ] {
        let warning = run
            .stderr
            .lines()
            .find(|l| l.contains(&format!("inline.conf:{line}:")))
            .unwrap_or_else(|| panic!("no warning for line {line}: {}", run.stderr));
        assert!(
            warning.starts_with("warning[inline-comment]: ")
                && warning.contains(&format!("write {written:?} to the kernel"))
                && warning.contains(&format!("imported as {imported} without the comment")),
            "{warning}"
        );
    }
    let rule = sb.run(&["explain", "inline-comment"]).expect(0).stdout;
    assert!(rule.contains("severity: warning"), "{rule}");
    let profile = sb.file("inline.yaml", &run.stdout);
    let loaded = Profile::load(&profile).unwrap();
    let value = |key: &str| setting(&loaded, key).value.to_string();
    assert_eq!(value("net.ipv4.tcp_fin_timeout"), "31");
    assert_eq!(value("net.ipv4.tcp_congestion_control"), "reno");
    assert_eq!(
        value("kernel.core_pattern"),
        "|/usr/lib/systemd/systemd-coredump %P %u"
    );
    // What the kernel makes of the numbers as sysctl -p writes them: the imported values.
    sysctl_p(&ns, &[sb.file("numbers.conf", numbers).as_path()]);
    assert_eq!(ns.read("net.ipv4.tcp_fin_timeout").trim(), "31");
    assert_eq!(
        ns.read("net.ipv4.ip_local_port_range").trim(),
        "20000\t40001"
    );
    // And of a name with the comment in it: refused.
    let named = sb.file(
        "named.conf",
        "net.ipv4.tcp_congestion_control = reno # the safe one\n",
    );
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "sysctl", "-p"])
        .arg(&named)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the kernel took a name with a comment"
    );
    // The imported profile validates (core_pattern's text with spaces included) and applies.
    let valid = sb.run(&["validate", "--kernel", "6.1", profile.to_str().unwrap()]);
    assert!(
        !valid.stdout.contains("value-shape"),
        "{}\n{}",
        valid.stdout,
        valid.stderr
    );
}

/// A glob in a sysctl.d file stays one pattern key in the imported profile (not this host's
/// interface names), unless a `-key` exclusion keeps it off a key (a profile has no
/// exclusions: then its keys are written). Applied in a namespace with another interface, the
/// pattern sets that one too.
#[test]
fn imported_globs_stay_patterns_unless_an_exclusion_needs_the_keys() {
    let Some(ns) = Netns::create() else { return };
    let sb = Sandbox::netns(&ns);
    let conf = sb.file(
        "globs.conf",
        "net.ipv4.conf.*.rp_filter = 2\nnet.ipv4.conf.lo.rp_filter = 0\nnet.ipv4.conf.*.log_martians = 1\n-net.ipv4.conf.lo.log_martians\n",
    );
    let run = sb.run(&["import", conf.to_str().unwrap()]).expect(0);
    let text = run.stdout;
    assert!(text.contains("\"net.ipv4.conf.*.rp_filter\":"), "{text}");
    assert!(!text.contains("net.ipv4.conf.all.rp_filter"), "{text}");
    assert!(text.contains("net.ipv4.conf.lo.rp_filter:"), "{text}");
    assert!(
        text.contains("net.ipv4.conf.all.log_martians:")
            && !text.contains("net.ipv4.conf.lo.log_martians")
            && !text.contains("*.log_martians\":"),
        "{text}"
    );
    let profile = sb.file("globs.yaml", &text);
    let loaded = Profile::load(&profile).unwrap();
    assert_eq!(loaded.patterns.len(), 1);
    // An interface the importing host did not have gets the pattern's value on apply.
    let ok = Command::new("ip")
        .args(["netns", "exec", &ns.name, "ip", "link", "add", "vx1"])
        .args(["type", "veth", "peer", "name", "vx2"])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    sb.run(&["apply", profile.to_str().unwrap()]).expect(0);
    assert_eq!(ns.read("net.ipv4.conf.vx1.rp_filter").trim(), "2");
    assert_eq!(ns.read("net.ipv4.conf.lo.rp_filter").trim(), "0");
    assert_eq!(ns.read("net.ipv4.conf.lo.log_martians").trim(), "0");
}
