//! Sysctl keys: parsed once at the edge, then trusted everywhere.
//!
//! A [`SysctlKey`] is a list of path components under the sysctl root. Parsing follows
//! sysctl.d(5): if the first separator is a slash, the rest of the slashes separate and dots are
//! kept (`net/ipv4/conf/eth0.100/rp_filter`); if it is a dot, dots separate and slashes stand for
//! dots inside a component (`net.ipv4.conf.eth0/100.rp_filter`). Components are restricted to a
//! conservative character set and may never be `.`/`..`, so a key can never name a path outside
//! the root. [`KeyPattern`] adds `*` components for schema entries and globs.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

mod chars;

pub(crate) use chars::{is_key_char, split_separators};

/// Longest key accepted, in bytes (the kernel's own names are far shorter).
const MAX_KEY_LEN: usize = 256;
/// Longest component accepted (interface names are at most 15 bytes).
const MAX_COMPONENT_LEN: usize = 64;

/// A validated sysctl name, e.g. `net.ipv4.tcp_fin_timeout`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SysctlKey {
    components: Vec<String>,
}

impl SysctlKey {
    /// Parses a key in dotted or slashed form.
    pub fn parse(text: &str) -> Result<Self> {
        let components = split(text, false)?;
        Ok(Self { components })
    }

    /// A key from path components already split (a directory walk), checked like a parsed key.
    pub fn from_components(components: Vec<String>) -> Result<Self> {
        let text = || components.join("/");
        let total: usize = components.iter().map(|c| c.len() + 1).sum();
        if total > MAX_KEY_LEN + 1 {
            return Err(reject(&text(), format!("longer than {MAX_KEY_LEN} bytes")));
        }
        check_components(&components, false, &text)?;
        Ok(Self { components })
    }

    /// The path components under the sysctl root.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// The relative path under the sysctl root (`net/ipv4/tcp_fin_timeout`).
    pub fn rel_path(&self) -> PathBuf {
        self.components.iter().collect()
    }

    /// The last component (`tcp_fin_timeout`).
    pub fn leaf(&self) -> &str {
        self.components.last().map(String::as_str).unwrap_or("")
    }
}

impl fmt::Display for SysctlKey {
    /// The canonical dotted form; dots inside a component are written as `/`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_dotted(f, &self.components)
    }
}

impl serde::Serialize for SysctlKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SysctlKey {
    /// A key read back from a record or a saved plan is checked like one typed by hand.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A key that may contain `*` components, each matching exactly one component.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyPattern {
    components: Vec<String>,
}

impl KeyPattern {
    /// Parses a pattern such as `net.ipv4.conf.*.rp_filter`.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(Self {
            components: split(text, true)?,
        })
    }

    /// Whether this pattern has no wildcard.
    pub fn is_literal(&self) -> bool {
        !self.components.iter().any(|c| c == "*")
    }

    /// Whether `key` matches this pattern.
    pub fn matches(&self, key: &SysctlKey) -> bool {
        self.components.len() == key.components.len()
            && self
                .components
                .iter()
                .zip(&key.components)
                .all(|(p, k)| p == "*" || p == k)
    }
}

impl fmt::Display for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_dotted(f, &self.components)
    }
}

fn write_dotted(f: &mut fmt::Formatter<'_>, components: &[String]) -> fmt::Result {
    for (i, c) in components.iter().enumerate() {
        if i > 0 {
            f.write_str(".")?;
        }
        // A dot inside a component (`eth0.100`) is written as `/`; most components have none.
        match c.contains('.') {
            true => f.write_str(&c.replace('.', "/"))?,
            false => f.write_str(c)?,
        }
    }
    Ok(())
}

fn reject(text: &str, reason: impl Into<String>) -> Error {
    Error::Key {
        key: truncate(text),
        reason: reason.into(),
    }
}

/// Keeps error messages readable when a hostile key is megabytes long.
fn truncate(text: &str) -> String {
    if text.len() <= 80 {
        return text.to_owned();
    }
    let mut end = 80;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn split(text: &str, allow_glob: bool) -> Result<Vec<String>> {
    let text = text.trim();
    if text.is_empty() {
        return Err(reject(text, "the key is empty"));
    }
    if text.len() > MAX_KEY_LEN {
        return Err(reject(text, format!("longer than {MAX_KEY_LEN} bytes")));
    }
    if text == ".." || text.contains("/..") || text.contains("../") {
        return Err(reject(text, "`..` could leave the sysctl root"));
    }
    if text.starts_with('/') {
        return Err(reject(
            text,
            "absolute paths are not keys; write it relative to /proc/sys",
        ));
    }
    let components = split_separators(text);
    check_components(&components, allow_glob, &|| text.to_owned())?;
    Ok(components)
}

/// The checks every key's components pass: at least two, each one allowed. `text` renders the
/// key for a message, only when a check fails.
fn check_components(
    components: &[String],
    allow_glob: bool,
    text: &dyn Fn() -> String,
) -> Result<()> {
    if components.len() < 2 {
        return Err(reject(
            &text(),
            "a sysctl key has at least two components (e.g. vm.swappiness)",
        ));
    }
    for component in components {
        if check_component("", component, allow_glob).is_err() {
            check_component(&text(), component, allow_glob)?;
        }
    }
    Ok(())
}

fn check_component(text: &str, component: &str, allow_glob: bool) -> Result<()> {
    if component.is_empty() {
        return Err(reject(
            text,
            "empty component (doubled or trailing separator)",
        ));
    }
    if component == "." || component == ".." || component.starts_with('.') {
        return Err(reject(
            text,
            format!("component {component:?} could leave the sysctl root"),
        ));
    }
    if component.len() > MAX_COMPONENT_LEN {
        return Err(reject(
            text,
            format!("component longer than {MAX_COMPONENT_LEN} bytes"),
        ));
    }
    if allow_glob && component == "*" {
        return Ok(());
    }
    // Byte by byte first (every allowed character is ASCII); chars only to name a bad one.
    if component.bytes().all(|b| is_key_char(char::from(b))) {
        return Ok(());
    }
    if let Some(bad) = component.chars().find(|c| !is_key_char(*c)) {
        return Err(reject(
            text,
            format!("character {bad:?} is not allowed in a sysctl key"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_and_slashed_forms_are_the_same_key() {
        let dotted = SysctlKey::parse("net.ipv4.tcp_fin_timeout").unwrap();
        let slashed = SysctlKey::parse("net/ipv4/tcp_fin_timeout").unwrap();
        assert_eq!(dotted, slashed);
        assert_eq!(dotted.to_string(), "net.ipv4.tcp_fin_timeout");
        assert_eq!(dotted.rel_path(), PathBuf::from("net/ipv4/tcp_fin_timeout"));
    }

    #[test]
    fn vlan_interface_names_follow_sysctl_d() {
        for text in [
            "net.ipv4.conf.eth0/100.rp_filter",
            "net/ipv4/conf/eth0.100/rp_filter",
        ] {
            let key = SysctlKey::parse(text).unwrap();
            assert_eq!(key.components()[3], "eth0.100", "{text}");
            assert_eq!(key.to_string(), "net.ipv4.conf.eth0/100.rp_filter");
            assert_eq!(
                key.rel_path(),
                PathBuf::from("net/ipv4/conf/eth0.100/rp_filter")
            );
        }
    }

    #[test]
    fn keys_that_could_escape_or_are_odd_are_rejected() {
        let cases = [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("net/../../etc/passwd", "leave"),
            ("net.ipv4/../x", "leave"),
            ("net/ipv4/./x", "leave"),
            ("net..ipv4", "empty component"),
            ("net.ipv4.", "empty component"),
            ("net.ipv4.tcp fin", "not allowed"),
            ("net.ipv4.tcp\0fin", "not allowed"),
            ("net.ipv4.tcp*", "not allowed"),
            ("swappiness", "at least two"),
            ("net.ipv4.tcp_$(reboot)", "not allowed"),
        ];
        for (text, expected) in cases {
            let err = SysctlKey::parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let long = format!("net.{}", "a".repeat(300));
        assert!(
            SysctlKey::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("longer than")
        );
    }

    #[test]
    fn patterns_match_one_component_per_star() {
        let pattern = KeyPattern::parse("net.ipv4.conf.*.rp_filter").unwrap();
        assert!(!pattern.is_literal());
        assert!(pattern.matches(&SysctlKey::parse("net.ipv4.conf.all.rp_filter").unwrap()));
        assert!(pattern.matches(&SysctlKey::parse("net.ipv4.conf.eth0/100.rp_filter").unwrap()));
        assert!(!pattern.matches(&SysctlKey::parse("net.ipv4.conf.all.arp_ignore").unwrap()));
        assert!(SysctlKey::parse("net.ipv4.conf.*.rp_filter").is_err());
    }
}
