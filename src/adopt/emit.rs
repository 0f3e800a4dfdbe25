//! Writing profiles: the YAML text of a profile made by `import` or `export`.
//!
//! The output is meant to be read back by `Profile::load` unchanged, so this module only writes
//! what the loader accepts: keys in canonical dotted form, integers as plain scalars, every other
//! token double-quoted (JSON string syntax, a subset of YAML's), tuples as flow lists. It refuses
//! values the loader would refuse (see [`representable`]); callers report those. It never reads
//! the kernel or files.

use std::fmt::Write as _;

use crate::profile::key::SysctlKey;
use crate::profile::value::{Value, is_ambiguous_number, parse_decimal};

/// One key of a profile to write.
#[derive(Debug, Clone)]
pub struct Item {
    /// The key.
    pub key: SysctlKey,
    /// Its value.
    pub value: Value,
    /// Where the value comes from (`file:line`, `kernel`).
    pub source: Option<String>,
    /// Why it is set.
    pub reason: Option<String>,
    /// Skipped where the key is absent.
    pub optional: bool,
    /// Written as this pattern key (`net.ipv4.conf.*.rp_filter`) instead of `key`, which is
    /// then one key it matches.
    pub pattern: Option<String>,
}

/// The header of a profile to write.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// `name:`.
    pub name: String,
    /// `description:`.
    pub description: Option<String>,
    /// Comment lines written at the top (without `#`).
    pub comments: Vec<String>,
}

/// Whether the profile loader accepts `value` (no octal-looking or hex numbers, no control
/// characters, no YAML booleans as bare words are an issue since tokens are quoted).
pub fn representable(value: &Value) -> bool {
    value.tokens().iter().all(|t| {
        !is_ambiguous_number(t) && !t.chars().any(|c| c.is_control() && !c.is_whitespace())
    })
}

/// Renders a profile document.
pub fn profile(header: &Header, items: &[Item]) -> String {
    // About a line of 40 bytes per key: sized once instead of doubling (and copying) ~15 times.
    let mut out = String::with_capacity(256 + 40 * items.len());
    for line in &header.comments {
        writeln!(out, "# {line}").ok();
    }
    writeln!(out, "version: 1").ok();
    writeln!(out, "name: {}", scalar(&header.name)).ok();
    if let Some(d) = &header.description {
        writeln!(out, "description: {}", quote(d)).ok();
    }
    if items.is_empty() {
        writeln!(out, "sysctls: {{}}").ok();
        return out;
    }
    writeln!(out, "sysctls:").ok();
    for item in items {
        write_item(&mut out, item);
    }
    out
}

fn write_item(out: &mut String, item: &Item) {
    // Written straight into `out` (an export writes every key of the host).
    out.push_str("  ");
    match &item.pattern {
        Some(pattern) => out.push_str(&quote(pattern)),
        None => write_key(out, &item.key),
    }
    if item.source.is_none() && item.reason.is_none() && !item.optional {
        out.push_str(": ");
        write_value(out, &item.value);
        out.push('\n');
        return;
    }
    out.push_str(":\n    value: ");
    write_value(out, &item.value);
    out.push('\n');
    if let Some(reason) = &item.reason {
        writeln!(out, "    reason: {}", quote(reason)).ok();
    }
    if let Some(source) = &item.source {
        writeln!(out, "    source: {}", quote(source)).ok();
    }
    if item.optional {
        out.push_str("    optional: true\n");
    }
}

/// The key in canonical dotted form, quoted unless it is plain.
fn write_key(out: &mut String, key: &SysctlKey) {
    let start = out.len();
    write!(out, "{key}").ok();
    let plain = out[start..]
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    if !plain {
        let quoted = quote(&out[start..]);
        out.truncate(start);
        out.push_str(&quoted);
    }
}

/// A value as YAML: a plain integer, a flow list of integers, or the text as one quoted string
/// (`"|/usr/lib/systemd/systemd-coredump %P %u"` keeps its spaces).
fn write_value(out: &mut String, value: &Value) {
    let token = |out: &mut String, t: &str| match parse_decimal(t) {
        Some(_) => out.push_str(t),
        None => out.push_str(&quote(t)),
    };
    match value.tokens() {
        [] => out.push_str("\"\""),
        [one] => token(out, one),
        many if many.iter().any(|t| parse_decimal(t).is_none()) => {
            out.push_str(&quote(value.text()));
        }
        many => {
            out.push('[');
            for (i, t) in many.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                token(out, t);
            }
            out.push(']');
        }
    }
}

/// A plain scalar when that is unambiguous (`web-tier`), else a quoted one.
fn scalar(text: &str) -> String {
    let plain = text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !matches!(
            text.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        );
    if plain { text.to_owned() } else { quote(text) }
}

/// A double-quoted YAML scalar (JSON string syntax).
pub fn quote(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;

    #[test]
    fn rendered_profiles_load_back_with_the_same_values() {
        let item = |k: &str, v: &str, source: Option<&str>, optional: bool| Item {
            key: SysctlKey::parse(k).unwrap(),
            value: Value::from_text(v),
            source: source.map(str::to_owned),
            reason: None,
            optional,
            pattern: None,
        };
        let items = vec![
            item(
                "net.ipv4.tcp_fin_timeout",
                "30",
                Some("/etc/sysctl.d/a.conf:3"),
                false,
            ),
            item("net.ipv4.ip_local_port_range", "10240\t65535", None, false),
            item(
                "net.ipv4.tcp_congestion_control",
                "bbr",
                Some("x: y # z"),
                true,
            ),
            item("net.ipv4.conf.eth0/100.rp_filter", "2", None, false),
            item("net.ipv4.ip_local_reserved_ports", "", None, false),
            item("kernel.domainname", "yes", None, false),
            item("net.ipv4.tcp_rmem", "-1 \"q\" 3", None, false),
        ];
        let header = Header {
            name: "imported: \"x\"".into(),
            description: Some("from a.conf".into()),
            comments: vec!["made by a test".into()],
        };
        let text = profile(&header, &items);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, &text).unwrap();
        let loaded = Profile::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(loaded.name, "imported: \"x\"");
        for item in &items {
            let setting = loaded.get(&item.key).unwrap();
            assert!(setting.value.same_as(&item.value), "{}: {text}", item.key);
            assert_eq!(setting.source, item.source);
            assert_eq!(setting.optional, item.optional);
        }
        assert!(
            text.contains("    source: \"/etc/sysctl.d/a.conf:3\"\n"),
            "{text}"
        );
        assert!(
            text.contains("  net.ipv4.ip_local_port_range: [10240, 65535]\n"),
            "{text}"
        );
    }

    #[test]
    fn values_the_loader_refuses_are_flagged() {
        assert!(representable(&Value::from_text("1 2 cubic")));
        assert!(!representable(&Value::from_text("010")));
        assert!(!representable(&Value::from_text("0x10")));
    }
}
