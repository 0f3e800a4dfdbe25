//! Docs and shell: completions and man pages from the clap definitions, the profile JSON Schema
//! (checked in, in sync, and actually validating profiles), `explain` with the live value and
//! sources, and the README sections for these commands.

mod common;

use std::process::Command;

use common::{Sandbox, bin, repo};

fn sysprof(args: &[&str]) -> common::Run {
    let out = Command::new(bin()).args(args).output().unwrap();
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every subcommand clap knows, so completions and man pages are checked against all of them.
fn subcommands() -> Vec<String> {
    use clap::CommandFactory;
    sysprof::cli::flags::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_owned())
        .collect()
}

#[test]
fn completions_cover_every_command_for_each_shell() {
    let commands = subcommands();
    assert!(commands.contains(&"doctor".to_owned()) && commands.contains(&"import".to_owned()));
    for shell in ["bash", "zsh", "fish"] {
        let run = sysprof(&["completions", shell]).expect(0);
        for command in &commands {
            assert!(
                run.stdout.contains(command.as_str()),
                "{shell} lacks {command}"
            );
        }
        assert!(
            run.stdout.contains("--boot-root"),
            "{shell} lacks global flags"
        );
    }
    // bash can load the script: the completion function gets defined.
    let run = sysprof(&["completions", "bash"]).expect(0);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("sysprof.bash");
    std::fs::write(&script, run.stdout).unwrap();
    let check = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p sysprof",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    sysprof(&["completions", "tcsh-nope"]).expect(64);
}

#[test]
fn man_pages_come_from_the_same_definitions() {
    let page = sysprof(&["man"]).expect(0).stdout;
    assert!(page.contains(".TH sysprof 1"), "{page}");
    for command in subcommands() {
        let roff = command.replace('-', "\\-");
        assert!(
            page.contains(&command) || page.contains(&roff),
            "man page lacks {command}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    sysprof(&["man", "--dir", dir.path().to_str().unwrap()]).expect(0);
    let doctor = std::fs::read_to_string(dir.path().join("sysprof-doctor.1")).unwrap();
    assert!(doctor.contains("conntrack\\-full") || doctor.contains("conntrack-full"));
    assert!(
        doctor.contains("port\\-use") || doctor.contains("port-use"),
        "{doctor}"
    );
    assert!(dir.path().join("sysprof.1").exists());
    // man(1) renders it when available (it is on Debian with man-db).
    if let Ok(out) = Command::new("man")
        .arg("-l")
        .arg(dir.path().join("sysprof-import.1"))
        .env("MANPAGER", "cat")
        .output()
    {
        if out.status.success() {
            assert!(String::from_utf8_lossy(&out.stdout).contains("sysctl"));
        }
    }
}

#[test]
fn the_checked_in_json_schema_is_what_the_binary_prints() {
    let printed = sysprof(&["schema", "--json-schema"]).expect(0).stdout;
    let path = repo().join(sysprof::schema::json_schema::CHECKED_IN);
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        printed == checked_in,
        "{} is stale: run `cargo run -- schema --json-schema > {}`",
        path.display(),
        sysprof::schema::json_schema::CHECKED_IN
    );
    for entry in std::fs::read_dir(repo().join("profiles")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../schema/profile.schema.json\n"),
            "{} does not reference the JSON Schema",
            path.display()
        );
    }
}

/// Validates YAML documents against the checked-in schema with Python's jsonschema (the same
/// draft-07 semantics yaml-language-server applies). Returns the verdict per document.
fn json_schema_verdicts(docs: &[(&str, String)]) -> Vec<bool> {
    let as_json: Vec<serde_json::Value> = docs
        .iter()
        .map(|(_, yaml)| serde_norway::from_str(yaml).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs.json");
    std::fs::write(&input, serde_json::to_string(&as_json).unwrap()).unwrap();
    let script = "import json, sys, jsonschema\n\
        schema = json.load(open(sys.argv[1]))\n\
        jsonschema.Draft7Validator.check_schema(schema)\n\
        v = jsonschema.Draft7Validator(schema)\n\
        print(json.dumps([v.is_valid(d) for d in json.load(open(sys.argv[2]))]))\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(repo().join(sysprof::schema::json_schema::CHECKED_IN))
        .arg(&input)
        .output()
        .expect("python3 (with the jsonschema package: pip install jsonschema)");
    assert!(
        out.status.success(),
        "python3 jsonschema failed (pip install jsonschema): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_json_schema_accepts_the_shipped_profiles_and_rejects_typos() {
    let mut docs: Vec<(&str, String)> = Vec::new();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(repo().join("profiles")).unwrap() {
        names.push(entry.unwrap().path());
    }
    for path in &names {
        docs.push(("shipped", std::fs::read_to_string(path).unwrap()));
    }
    let shipped = docs.len();
    for bad in [
        "sysctl:\n  net.ipv4.tcp_fin_timeout: 30\n",
        "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: {value: 30, why: x}\n",
        "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: {reason: no value}\n",
        "version: 1\nsysctls:\n  net.ipv4.tcp_fin_timeout: true\n",
        "version: 1\ncontext:\n  nat: yes please\n",
        "version: 1\ncontext:\n  natt: true\n",
        "version: 2\n",
        "version: 1\nsysctls:\n  ../etc/passwd: 1\n",
    ] {
        docs.push(("bad", bad.to_owned()));
    }
    docs.push(("good", "version: 1\nsysctls:\n  net/ipv4/conf/eth0.100/rp_filter: 1\n  net.ipv4.ip_local_port_range: [10240, 65535]\n  net.ipv4.tcp_fastopen: {value: 3, optional: true}\n".to_owned()));
    let verdicts = json_schema_verdicts(&docs);
    for (i, ((kind, text), valid)) in docs.iter().zip(&verdicts).enumerate() {
        let label = names
            .get(i)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        assert_eq!(*valid, *kind != "bad", "{kind} {label}: {text}");
    }
    assert!(shipped >= 5);
}

#[test]
fn explain_shows_the_live_value_and_the_sources() {
    let sb = Sandbox::fake(&[
        ("net.ipv4.tcp_fin_timeout", "45"),
        ("net.ipv4.conf.eth0.rp_filter", "2"),
    ]);
    let run = sb.run(&["explain", "net.ipv4.tcp_fin_timeout"]).expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0].trim(),
        "key: net.ipv4.tcp_fin_timeout",
        "{}",
        run.stdout
    );
    assert!(
        lines[1].trim().starts_with("entry: curated"),
        "{}",
        run.stdout
    );
    assert_eq!(lines[2].trim(), "current value: 45", "{}", run.stdout);
    assert!(
        run.stdout
            .contains("sources: ip-sysctl.rst#tcp_fin_timeout; "),
        "{}",
        run.stdout
    );
    let pattern = sb
        .run(&[
            "explain",
            "net.ipv4.conf.eth0.rp_filter",
            "--format",
            "json",
        ])
        .expect(0)
        .json();
    assert_eq!(pattern["current"], "2");
    assert!(!pattern["sources"].as_array().unwrap().is_empty());
    let rule = sb.run(&["explain", "tw-recycle-nat"]).expect(0);
    assert!(rule.stdout.contains("sources: seed:001"), "{}", rule.stdout);
}

#[test]
fn schema_lists_the_catalogue() {
    let run = sysprof(&["schema", "--color", "never"]).expect(0);
    assert!(run.stdout.starts_with("KEY "), "{}", run.stdout);
    assert!(run.stdout.contains("net.ipv4.tcp_fin_timeout"));
}

#[test]
fn readme_documents_these_commands() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    for needle in [
        "## Import and export",
        "## Doctor",
        "## Completions and man page",
        "## Editor integration",
        "sysprof import --system",
        "sysprof export --prefix net.ipv4 --non-default",
        "sysprof doctor",
        "sysprof completions bash",
        "sysprof man",
        "sysprof schema --json-schema",
        "yaml-language-server",
    ] {
        assert!(readme.contains(needle), "README.md lacks {needle:?}");
    }
}

/// `schema` filters by prefix (whole components unless the prefix ends mid-word), scope and
/// word, all at once; `explain` and the table say whether an entry is curated or generated.
#[test]
fn schema_filters_and_origins() {
    let sb = Sandbox::fake(&[]);
    let keys = |args: &[&str]| -> Vec<(String, String, bool)> {
        let mut all = vec!["schema", "--format", "json"];
        all.extend(args);
        let json = sb.run(&all).expect(0).json();
        json["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["key"].as_str().unwrap().to_owned(),
                    k["scope"].as_str().unwrap().to_owned(),
                    k["generated"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    };
    let every = keys(&[]);
    let ipv4 = keys(&["--prefix", "net.ipv4"]);
    assert!(!ipv4.is_empty() && ipv4.len() < every.len());
    assert!(
        ipv4.iter().all(|(k, _, _)| k.starts_with("net.ipv4.")),
        "{ipv4:?}"
    );
    let dirty = keys(&["--prefix", "vm.dirty_"]);
    assert!(
        dirty.iter().any(|(k, _, _)| k == "vm.dirty_ratio"),
        "{dirty:?}"
    );
    assert!(dirty.iter().all(|(k, _, _)| k.starts_with("vm.dirty_")));
    let ipc = keys(&["--scope", "ipc"]);
    assert!(ipc.iter().any(|(k, _, _)| k == "kernel.shmmax"), "{ipc:?}");
    assert!(ipc.iter().all(|(_, s, _)| s == "ipc"));
    let both = keys(&["--search", "CONNTRACK", "--scope", "netns"]);
    assert!(
        both.iter()
            .any(|(k, _, _)| k == "net.netfilter.nf_conntrack_tcp_timeout_established"),
        "{both:?}"
    );
    assert!(both.iter().all(|(_, s, _)| s == "netns"));
    assert!(every.iter().any(|(_, _, g)| *g) && every.iter().any(|(_, _, g)| !*g));

    let table = sb
        .run(&["schema", "--prefix", "vm.dirty_"])
        .expect(0)
        .stdout;
    assert!(table.contains("ORIGIN"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("vm.dirty_ratio") && l.contains("curated")),
        "{table}"
    );
    assert!(
        table.contains(&format!("{} of {} key entries", dirty.len(), every.len())),
        "{table}"
    );
    let bad = sb.run(&["schema", "--scope", "galaxy"]).expect(64);
    assert!(
        bad.stderr.contains("one of netns, ro_in_child, init_only"),
        "{}",
        bad.stderr
    );

    let generated = every.iter().find(|(_, _, g)| *g).unwrap();
    let explained = sb.run(&["explain", &generated.0]).expect(0).stdout;
    assert!(
        explained.contains("entry: generated from the kernel's own tables"),
        "{explained}"
    );
    let curated = sb.run(&["explain", "vm.dirty_ratio"]).expect(0).stdout;
    assert!(curated.contains("entry: curated by hand"), "{curated}");
}
