//! Property tests for the parsers that read untrusted text: sysctl keys and patterns, values and
//! port lists, the YAML reader and the profile loader. The invariants themselves live in
//! `tests/invariants/mod.rs`, which the cargo-fuzz targets in `fuzz/` share; here they run on
//! generated inputs with a bounded case count, so the suite stays within a few seconds. Inputs
//! the fuzzers once crashed on are kept at the bottom as plain regression tests.

mod invariants;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    }
}

/// Key-like text: components that are names, dots, `..`, globs or hostile characters, joined by
/// dots or slashes, sometimes with a leading slash or surrounding whitespace.
fn key_text() -> impl Strategy<Value = String> {
    let component = prop_oneof![
        4 => "[a-z0-9_]{1,8}",
        2 => "[a-z0-9_.@:+-]{1,6}",
        1 => Just("..".to_owned()),
        1 => Just(".".to_owned()),
        1 => Just("*".to_owned()),
        1 => Just(String::new()),
        1 => "[ \t/\\\\\\x00$*~é]{1,3}",
    ];
    let separator = prop_oneof![Just("."), Just("/"), Just("//"), Just("./"), Just("/.")];
    (
        prop::collection::vec((component, separator), 1..8),
        prop_oneof![Just(""), Just("/"), Just(" "), Just("../")],
    )
        .prop_map(|(parts, prefix)| {
            let mut text = prefix.to_owned();
            for (i, (component, separator)) in parts.iter().enumerate() {
                if i > 0 {
                    text.push_str(separator);
                }
                text.push_str(component);
            }
            text
        })
}

/// Value-like text: numbers with and without leading zeros and signs, port lists, words, and
/// the edges of u32, in any whitespace.
fn value_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        3 => (0u32..70_000).prop_map(|n| n.to_string()),
        1 => Just("4294967295".to_owned()),
        1 => Just("4294967296".to_owned()),
        2 => "[0-9]{1,3}(-[0-9]{1,5})?(,[0-9]{1,5}(-[0-9]{1,5})?){0,3}",
        1 => "-?0[0-9]{0,3}|\\+[0-9]{1,3}|0x[0-9a-f]{1,3}",
        1 => "[a-z]{1,6}",
        1 => "[0-9,\\-]{1,12}",
    ];
    prop::collection::vec(
        (
            token,
            prop_oneof![Just(" "), Just("\t"), Just("\n"), Just("  ")],
        ),
        0..5,
    )
    .prop_map(|parts| parts.into_iter().map(|(t, s)| t + s).collect())
}

/// A port-list token made of ranges anywhere in u32, including its last values.
fn port_list() -> impl Strategy<Value = String> {
    let bound = prop_oneof![
        3 => 0u32..70_000,
        1 => (u32::MAX - 3)..=u32::MAX,
    ];
    let range = (bound.clone(), bound).prop_map(|(a, b)| {
        let (l, h) = (a.min(b), a.max(b));
        if l == h {
            l.to_string()
        } else {
            format!("{l}-{h}")
        }
    });
    prop::collection::vec(range, 1..6).prop_map(|r| r.join(","))
}

/// YAML-ish text from the characters that drive the scanner: indicators, anchors, aliases,
/// tags, quotes, block scalars, comments, indentation.
fn yaml_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => "[a-z0-9]{1,4}",
        2 => Just(": ".to_owned()),
        2 => Just("\n".to_owned()),
        2 => Just("  ".to_owned()),
        1 => Just("- ".to_owned()),
        1 => "[\\[\\]{},]",
        1 => "&[a-z]{1,2} ",
        1 => "\\*[a-z]{1,2}",
        1 => Just("!!str ".to_owned()),
        1 => Just("? ".to_owned()),
        1 => "['\"]",
        1 => "[|>][-+]?\n",
        1 => Just("# c\n".to_owned()),
        1 => Just("---\n".to_owned()),
        1 => Just("...\n".to_owned()),
        1 => Just("%YAML 1.2\n".to_owned()),
        1 => Just("\t".to_owned()),
        1 => Just("\u{feff}".to_owned()),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|p| p.concat())
}

/// Deeply nested documents in every nesting style, far past the reader's limit.
fn deep_yaml() -> impl Strategy<Value = String> {
    (1usize..400, 0u8..4).prop_map(|(depth, style)| match style {
        0 => format!("{}1{}", "[".repeat(depth), "]".repeat(depth)),
        1 => format!("{}1{}", "{a: ".repeat(depth), "}".repeat(depth)),
        2 => (0..depth)
            .map(|i| format!("{}- \n", "  ".repeat(i)))
            .collect(),
        _ => (0..depth)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect(),
    })
}

/// Documents that use anchors and aliases, including the "billion laughs" shape.
fn alias_yaml() -> impl Strategy<Value = String> {
    (1usize..12, 1usize..6).prop_map(|(levels, fanout)| {
        let mut text = "a0: &a0 [lol]\n".to_owned();
        for i in 1..levels {
            let refs = vec![format!("*a{}", i - 1); fanout].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        text
    })
}

/// A profile built from real profile fields, with keys, values, facts and `extends` drawn from
/// small pools so that most cases load and some reach validation's rules.
fn profile_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("net.ipv4.ip_local_port_range"),
        Just("net.ipv4.ip_local_reserved_ports"),
        Just("net.ipv4.tcp_tw_reuse"),
        Just("net.ipv4.tcp_timestamps"),
        Just("net.core.somaxconn"),
        Just("net/ipv4/conf/eth0.100/rp_filter"),
        Just("vm.swappiness"),
        Just("../etc/passwd"),
    ];
    let value = prop_oneof![
        value_text().prop_map(|v| format!("{v:?}")),
        port_list().prop_map(|v| format!("{v:?}")),
        Just("[1024, 65535]".to_owned()),
        Just("[0, 4294967295]".to_owned()),
        Just("{value: 1, reason: r, optional: true}".to_owned()),
        Just("true".to_owned()),
        Just("010".to_owned()),
        Just("".to_owned()),
    ];
    let fact = prop_oneof![
        Just("nat: true".to_owned()),
        Just("kubernetes_node: true".to_owned()),
        Just("kubernetes_pod: true".to_owned()),
        Just("server: true".to_owned()),
        port_list().prop_map(|p| format!("nodeport_range: {p:?}")),
        Just("listening_ports: [22, 65535, 70000]".to_owned()),
        "k8s_version: \"v?[0-9]{1,3}\\.[0-9]{1,3}\"",
    ];
    (
        prop::collection::vec((key, value), 0..6),
        prop::collection::vec(fact, 0..4),
        prop_oneof![
            Just(""),
            Just("extends: parent.yaml\n"),
            Just("extends: [child.yaml]\n")
        ],
    )
        .prop_map(|(settings, facts, extends)| {
            let mut text = format!("version: 1\n{extends}context:\n");
            for fact in facts {
                text.push_str(&format!("  {fact}\n"));
            }
            text.push_str("sysctls:\n");
            for (key, value) in settings {
                text.push_str(&format!("  {key}: {value}\n"));
            }
            text
        })
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn keys_never_escape_the_root_and_round_trip(text in key_text()) {
        invariants::check_key(&text);
        invariants::check_pattern(&text);
    }

    #[test]
    fn arbitrary_text_is_never_a_key_outside_the_root(text in any::<String>()) {
        invariants::check_key(&text);
        invariants::check_pattern(&text);
    }

    #[test]
    fn same_as_is_an_equivalence(a in value_text(), b in value_text(), c in value_text()) {
        invariants::check_values(&a, &b, &c);
    }

    #[test]
    fn port_list_canonicalisation_is_idempotent(token in port_list()) {
        invariants::check_port_list(&token);
        invariants::check_values(&token, &token, &token);
    }
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn yaml_reader_never_panics_on_yaml_like_text(text in yaml_text()) {
        invariants::check_yaml(&text);
    }

    #[test]
    fn yaml_reader_never_panics_on_arbitrary_text(text in any::<String>()) {
        invariants::check_yaml(&text);
    }

    #[test]
    fn yaml_reader_bounds_deep_nesting(text in deep_yaml()) {
        invariants::check_yaml(&text);
    }

    #[test]
    fn yaml_reader_refuses_aliases(text in alias_yaml()) {
        invariants::check_yaml(&text);
        prop_assert!(sysprof::profile::yaml::parse(&text).is_err() || !text.contains('*'));
    }
}

proptest! {
    #![proptest_config(config(150))]

    #[test]
    fn profiles_load_or_fail_cleanly(child in profile_text(), parent in profile_text()) {
        invariants::check_profile(&child, &parent);
    }

    #[test]
    fn yaml_like_profiles_load_or_fail_cleanly(child in yaml_text()) {
        invariants::check_profile(&child, "version: 1\nsysctls: {}\n");
    }
}

/// glob(3) matching as the straightforward recursive definition: the oracle for the linear-time
/// matcher in `glob` (exponential on long inputs, so only fed short ones).
fn reference_match(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|skip| reference_match(&p[1..], &n[skip..])),
        Some(_) if n.is_empty() => false,
        Some('?') => reference_match(&p[1..], &n[1..]),
        Some('[') => match reference_class(&p[1..], n[0]) {
            Some((hit, len)) => hit && reference_match(&p[1 + len..], &n[1..]),
            None => n[0] == '[' && reference_match(&p[1..], &n[1..]),
        },
        Some(c) => *c == n[0] && reference_match(&p[1..], &n[1..]),
    }
}

/// A bracket class after `[`: whether `c` is in it, and the pattern characters it spans.
fn reference_class(p: &[char], c: char) -> Option<(bool, usize)> {
    let negate = matches!(p.first(), Some('!' | '^'));
    let start = usize::from(negate);
    let close = (start + 1..p.len()).find(|&i| p[i] == ']')?;
    let members = &p[start..close];
    let mut hit = false;
    let mut i = 0;
    while i < members.len() {
        if i + 2 < members.len() && members[i + 1] == '-' {
            hit |= members[i] <= c && c <= members[i + 2];
            i += 3;
        } else {
            hit |= members[i] == c;
            i += 1;
        }
    }
    Some((hit != negate, close + 1))
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn glob_matching_agrees_with_the_recursive_definition(
        pattern in "[ab*?\\[\\]!^-]{0,9}",
        name in "[ab\\[\\]!^-]{0,9}",
    ) {
        let p: Vec<char> = pattern.chars().collect();
        let n: Vec<char> = name.chars().collect();
        prop_assert_eq!(
            sysprof::adopt::glob::component_matches(&pattern, &name),
            reference_match(&p, &n),
            "{:?} against {:?}", pattern, name
        );
    }
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn sysctl_conf_lines_parse_or_fail_cleanly(
        lines in prop::collection::vec(
            (prop_oneof![Just(""), Just("-"), Just(" - ")], key_text(), "[ =]{0,3}", value_text()),
            0..6,
        ),
    ) {
        let text: String = lines
            .iter()
            .map(|(prefix, key, eq, value)| format!("{prefix}{key}{eq}{value}\n"))
            .collect();
        invariants::check_import(&text);
    }
}

// Inputs the fuzzers found. Each failed before the fix named in its comment.

/// Runs `check` on another thread and fails if it takes longer than `limit` (a regression here
/// would otherwise hang the suite instead of failing it).
fn within(limit: std::time::Duration, check: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        check();
        done.send(()).ok();
    });
    finished
        .recv_timeout(limit)
        .expect("still running after the time limit (or panicked): see the output above");
}

/// value fuzzer: merging a range that ends at u32::MAX overflowed (`last.1 + 1`) and panicked;
/// fixed with a saturating add in `value::parse_port_list`.
#[test]
fn port_lists_ending_at_u32_max_merge_without_overflow() {
    use sysprof::profile::value::parse_port_list;
    assert_eq!(parse_port_list("0-4294967295,1"), Some(vec![(0, u32::MAX)]));
    assert_eq!(
        parse_port_list("4294967295,4294967295"),
        Some(vec![(u32::MAX, u32::MAX)])
    );
    for token in ["50,781,81,6,8001,8-4294967295", "4294967294,4294967295"] {
        invariants::check_port_list(token);
        invariants::check_values(token, token, token);
    }
}

/// import fuzzer (a libFuzzer timeout): glob matching retried every split at every `*`, so a
/// run of stars took exponential time; fixed by the linear matcher in `glob::component_matches`.
#[test]
fn globs_with_many_stars_match_in_linear_time() {
    within(std::time::Duration::from_secs(10), || {
        invariants::check_import("#c&ommant\n******************kerneynrlt*****/***e=lter\n");
        let pattern = format!("{}b", "*a".repeat(31));
        assert!(!sysprof::adopt::glob::component_matches(
            &pattern,
            &"a".repeat(64)
        ));
        assert!(sysprof::adopt::glob::component_matches(
            &pattern,
            &format!("{}b", "a".repeat(63))
        ));
    });
}

/// yaml and profile fuzzers: a lone `\r` ends a line for YAML but not for `str::lines`, so
/// positions past `text.lines().count()` are right; the invariant counts lines the YAML way.
#[test]
fn lone_carriage_returns_are_yaml_line_breaks() {
    let node = sysprof::profile::yaml::parse("a: 1\r\r\rb: 2\r")
        .unwrap()
        .unwrap();
    let sysprof::profile::yaml::NodeKind::Map(entries) = &node.kind else {
        panic!("{node:?}")
    };
    assert_eq!(entries[1].0.mark.line, 4);
    invariants::check_yaml("# c\r\r\r\r\r\r\r\r 004)\n# x\n");
    invariants::check_profile(
        "# c\r\r\r\r\r\r\r\r\r\r\rsysctls: [\n",
        "version: 1\nsysctls: {}\n",
    );
}
