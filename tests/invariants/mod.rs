//! Invariants of sysprof's parsers (keys, values, YAML, profiles, sysctl.conf files), shared by the proptest suite (`tests/proptest_parsers.rs`)
//! and the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`, which include this file by path).
//!
//! Each `check_*` function takes arbitrary input, runs one parser on it and panics when an
//! invariant breaks; "the parser returned an error" is always fine, a panic never is. Nothing
//! here touches the kernel: profiles are written to a private temporary directory and validated
//! offline against the embedded schema.
#![allow(dead_code)]

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use sysprof::adopt::glob::{self, Glob};
use sysprof::adopt::import::{self, Name};
use sysprof::error::{Error, exit};
use sysprof::profile::Profile;
use sysprof::profile::key::{KeyPattern, SysctlKey};
use sysprof::profile::value::{Value, is_ambiguous_number, parse_decimal, parse_port_list};
use sysprof::profile::yaml::{self, Node, NodeKind};
use sysprof::schema::finding::Target;
use sysprof::schema::validate;
use sysprof::schema::{Schema, Version};

/// A parsed key names a relative path strictly below the sysctl root, made of the key's own
/// components, and its canonical text parses back to the same key.
pub fn check_key(text: &str) {
    let Ok(key) = SysctlKey::parse(text) else {
        return;
    };
    check_components(text, key.components());
    check_stays_under_root(text, &key.rel_path(), key.components().len());
    let shown = key.to_string();
    assert_eq!(
        SysctlKey::parse(&shown).ok().as_ref(),
        Some(&key),
        "{text:?} displays as {shown:?}, which does not parse back to the same key"
    );
    let pattern = KeyPattern::parse(text).expect("a valid key is a valid pattern");
    assert!(pattern.is_literal() && pattern.matches(&key), "{text:?}");
}

/// A parsed pattern round-trips through its display form; a literal pattern is a key it matches.
pub fn check_pattern(text: &str) {
    let Ok(pattern) = KeyPattern::parse(text) else {
        return;
    };
    let shown = pattern.to_string();
    assert_eq!(
        KeyPattern::parse(&shown).ok().as_ref(),
        Some(&pattern),
        "pattern {text:?} displays as {shown:?}, which does not parse back"
    );
    if pattern.is_literal() {
        let key = SysctlKey::parse(&shown).expect("a literal pattern is a key");
        assert!(pattern.matches(&key), "{text:?}");
    }
}

fn check_components(text: &str, components: &[String]) {
    assert!(components.len() >= 2, "{text:?}: {components:?}");
    for c in components {
        assert!(!c.is_empty(), "{text:?}: empty component in {components:?}");
        assert!(c != "." && c != "..", "{text:?}: {components:?}");
        assert!(!c.contains('/') && !c.contains('\0'), "{text:?}: {c:?}");
    }
}

fn check_stays_under_root(text: &str, rel: &Path, count: usize) {
    assert!(rel.is_relative(), "{text:?} -> {rel:?} is absolute");
    assert!(
        rel.components().all(|c| matches!(c, Component::Normal(_))),
        "{text:?} -> {rel:?} has a component that is not a plain name"
    );
    assert_eq!(rel.components().count(), count, "{text:?} -> {rel:?}");
    let root = Path::new("/proc/sys");
    assert!(root.join(rel).starts_with(root), "{text:?} -> {rel:?}");
}

/// Splitting, re-rendering and comparing values: `same_as` is an equivalence relation on
/// kernel text, and a value survives its own kernel and sysctl.d renderings.
pub fn check_values(a: &str, b: &str, c: &str) {
    let (va, vb, vc) = (
        Value::from_text(a),
        Value::from_text(b),
        Value::from_text(c),
    );
    assert!(va.same_as(&va), "same_as is not reflexive for {a:?}");
    assert_eq!(va.same_as(&vb), vb.same_as(&va), "{a:?} vs {b:?}");
    if va.same_as(&vb) && vb.same_as(&vc) {
        assert!(va.same_as(&vc), "not transitive: {a:?} {b:?} {c:?}");
    }
    assert_eq!(Value::from_text(&va.to_kernel_text()), va, "{a:?}");
    assert_eq!(Value::from_text(&va.to_string()), va, "{a:?}");
    // The same tokens are the same value to the kernel (a string's spacing aside).
    assert!(
        Value::from_tokens(va.tokens().to_vec()).same_as(&va),
        "from_tokens must agree with from_text for {a:?}"
    );
    for (i, token) in va.tokens().iter().enumerate() {
        assert!(!token.is_empty() && !token.contains(char::is_whitespace));
        assert_eq!(va.int_at(i), parse_decimal(token));
        check_token(token);
    }
    if let Some(n) = va.as_int() {
        assert!(va.same_as(&Value::from_text(&n.to_string())), "{a:?}");
    }
}

fn check_token(token: &str) {
    if let Some(n) = parse_decimal(token) {
        let canonical = n.to_string();
        assert!(
            canonical == token || token == "-0",
            "parse_decimal accepted a non-canonical {token:?}"
        );
        assert!(!is_ambiguous_number(token), "{token:?}");
    }
    check_port_list(token);
}

/// A port list parses into sorted, disjoint, non-adjacent ranges, and its rendering parses back
/// to the same ranges (canonicalisation is idempotent).
pub fn check_port_list(token: &str) {
    let Some(ranges) = parse_port_list(token) else {
        return;
    };
    assert!(!ranges.is_empty(), "{token:?}");
    for &(low, high) in &ranges {
        assert!(low <= high, "{token:?}: {ranges:?}");
    }
    for pair in ranges.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(
            u64::from(a.1) + 1 < u64::from(b.0),
            "{token:?}: ranges overlap or touch: {ranges:?}"
        );
    }
    let shown = render_ranges(&ranges);
    assert_eq!(
        parse_port_list(&shown),
        Some(ranges.clone()),
        "{token:?} -> {shown:?}"
    );
    let value = Value::from_text(token);
    assert!(
        value.same_as(&Value::from_text(&shown)),
        "{token:?} vs {shown:?}"
    );
}

/// The kernel's rendering of port ranges (`70,8080-8081`).
pub fn render_ranges(ranges: &[(u32, u32)]) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|&(l, h)| {
            if l == h {
                l.to_string()
            } else {
                format!("{l}-{h}")
            }
        })
        .collect();
    parts.join(",")
}

/// The YAML reader never panics, bounds nesting and refuses aliases; every position is 1-based
/// and inside the text.
pub fn check_yaml(text: &str) {
    let lines = yaml_lines(text);
    match yaml::parse(text) {
        Ok(Some(node)) => check_node(&node, text, lines, 1),
        Ok(None) => {}
        Err(e) => assert!(e.mark.line <= lines + 1, "{text:?}: error at {:?}", e.mark),
    }
}

/// The number of lines as YAML counts them: `\r\n`, `\r` and `\n` each end a line (`str::lines`
/// does not split at a lone `\r`, which the fuzzer found YAML does).
fn yaml_lines(text: &str) -> usize {
    text.replace("\r\n", "\n").matches(['\r', '\n']).count() + 1
}

fn check_node(node: &Node, text: &str, lines: usize, depth: usize) {
    assert!(depth <= 33, "{text:?}: nesting {depth} got through");
    assert!(
        // An implicit null at the end of a text without a final newline sits on the line after.
        node.mark.line >= 1 && node.mark.line <= lines + 1 && node.mark.col >= 1,
        "{text:?}: node at {:?}",
        node.mark
    );
    match &node.kind {
        NodeKind::Scalar { .. } => {}
        NodeKind::Seq(items) => {
            for item in items {
                check_node(item, text, lines, depth + 1);
            }
        }
        NodeKind::Map(entries) => {
            for (i, (key, value)) in entries.iter().enumerate() {
                let name = key.as_scalar().expect("mapping keys are scalars");
                assert!(
                    entries[..i]
                        .iter()
                        .all(|(k, _)| k.as_scalar() != Some(name)),
                    "{text:?}: duplicate key {name:?} got through"
                );
                check_node(key, text, lines, depth + 1);
                check_node(value, text, lines, depth + 1);
            }
        }
    }
}

/// The names a fuzzed profile may extend (itself, its parent, a missing file, its directory);
/// anything else is skipped so that a fuzzer can never make the loader read a file outside its
/// own directory (a FIFO or /proc/kmsg would hang it).
const PROFILE_FILES: [&str; 5] = ["child.yaml", "parent.yaml", "missing.yaml", ".", ""];

/// Loads `child` (which may extend `parent`) from a private directory; an error is an
/// invalid-input error pointing inside the file, a success has sane keys and values and survives
/// validation and rendering.
pub fn check_profile(child: &str, parent: &str) {
    if !extends_stays_inside(child) || !extends_stays_inside(parent) {
        return;
    }
    let dir = scratch_dir();
    std::fs::write(dir.join("child.yaml"), child).unwrap();
    std::fs::write(dir.join("parent.yaml"), parent).unwrap();
    let path = dir.join("child.yaml");
    match Profile::load(&path) {
        Ok(profile) => check_loaded(&profile, &path),
        Err(e) => check_load_error(&e, child, parent),
    }
}

fn extends_stays_inside(text: &str) -> bool {
    let Ok(Some(Node {
        kind: NodeKind::Map(entries),
        ..
    })) = yaml::parse(text)
    else {
        return true;
    };
    let Some((_, parents)) = entries
        .iter()
        .find(|(k, _)| k.as_scalar() == Some("extends"))
    else {
        return true;
    };
    let named: Vec<&Node> = match &parents.kind {
        NodeKind::Seq(items) => items.iter().collect(),
        _ => vec![parents],
    };
    named
        .iter()
        .all(|n| n.as_scalar().is_none_or(|s| PROFILE_FILES.contains(&s)))
}

fn check_loaded(profile: &Profile, path: &Path) {
    assert_eq!(profile.fingerprint.len(), 64);
    assert!(
        !profile.files.is_empty() && profile.files.len() <= 2,
        "{:?}",
        profile.files
    );
    for (key, setting) in &profile.settings {
        assert_eq!(key, &setting.key);
        check_key(&key.to_string());
        assert!(setting.at.line >= 1 && setting.value_at.line >= 1);
        for token in setting.value.tokens() {
            assert!(!token.chars().any(|c| c.is_control()), "{token:?}");
            assert!(!is_ambiguous_number(token), "{token:?} got through");
        }
    }
    let again = Profile::load(path).expect("loading the same files twice");
    assert_eq!(again.fingerprint, profile.fingerprint);
    let report = validate::validate(profile, schema(), &target(profile));
    let mut out = Vec::new();
    sysprof::cli::render::findings(&mut out, profile, &report).unwrap();
}

fn check_load_error(e: &Error, child: &str, parent: &str) {
    assert_eq!(e.exit_code(), exit::INVALID_INPUT, "{e}");
    if let Error::Profile { at, .. } = e {
        let text = if at.file.ends_with("parent.yaml") {
            parent
        } else {
            child
        };
        let lines = yaml_lines(text);
        assert!(at.line >= 1 && at.line <= lines + 1, "{e} ({lines} lines)");
    }
    let mut out = Vec::new();
    sysprof::cli::render::error(&mut out, e).unwrap();
}

fn target(profile: &Profile) -> Target {
    Target {
        kernel: Version(6, 1, 0),
        k8s: profile
            .fact_text("k8s_version")
            .and_then(|v| v.parse().ok()),
        mem_bytes: Some(8 << 30),
        page_size: 4096,
        child_netns: profile.fact("kubernetes_pod"),
        hz: None,
        strict: false,
    }
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::embedded().expect("the embedded schema loads"))
}

/// One directory per thread (the test runner is parallel), reused by every case; removed when
/// the thread ends (a fuzzer stopped by a signal leaves its one directory in the temp dir).
fn scratch_dir() -> PathBuf {
    thread_local! {
        static DIR: tempfile::TempDir = tempfile::tempdir().expect("a temporary directory");
    }
    DIR.with(|d| d.path().to_owned())
}

/// Names that glob components are matched against: real ones and a long one that makes a
/// backtracking matcher blow up.
const GLOB_PROBES: [&str; 4] = [
    "rp_filter",
    "eth0.100",
    "tcp_keepalive_intvl",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
];

/// The sysctl.conf reader: an error is an invalid-input error on a line of the text; every entry
/// sits on a meaningful line, its key stays under the root, its glob round-trips through its
/// display form and matches in bounded time, its value is plain; merging never panics.
pub fn check_import(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    let entries = match import::parse(text, "fuzz.conf") {
        Ok(entries) => entries,
        Err(e) => {
            assert_eq!(e.exit_code(), exit::INVALID_INPUT, "{e}");
            if let Error::Profile { at, .. } = &e {
                assert!(
                    at.line >= 1 && at.line <= lines.len().max(1) && at.col >= 1,
                    "{e}"
                );
            }
            return;
        }
    };
    for entry in &entries {
        let line = lines[entry.at.line - 1].trim();
        assert!(
            !line.is_empty() && !line.starts_with(['#', ';']),
            "{line:?}"
        );
        match &entry.name {
            Name::Key(key) => check_key(&key.to_string()),
            Name::Glob(glob) => check_glob(glob),
        }
        if let Some(value) = &entry.value {
            assert_eq!(value.trim(), value);
            assert!(
                !value.chars().any(|c| c.is_control() && !c.is_whitespace()),
                "{value:?}"
            );
            assert!(
                !value.split_whitespace().any(is_ambiguous_number),
                "{value:?}"
            );
        }
    }
    let mut options = import::Options::default();
    options.add(entries.clone());
    options.add(entries);
    let names: Vec<&Name> = options.entries().iter().map(|e| &e.name).collect();
    for (i, name) in names.iter().enumerate() {
        assert!(!names[..i].contains(name), "{name} twice after merging");
    }
}

fn check_glob(glob: &Glob) {
    assert!(glob.components().len() >= 2, "{glob}");
    assert!(glob.components().iter().all(|c| !c.is_empty()), "{glob:?}");
    let shown = glob.to_string();
    assert_eq!(
        Glob::parse(&shown).ok().as_ref(),
        Some(glob),
        "glob {glob:?} displays as {shown:?}, which does not parse back"
    );
    for pattern in glob.components() {
        for name in GLOB_PROBES {
            glob::component_matches(pattern, name);
        }
    }
}
