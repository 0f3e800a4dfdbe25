//! Globs over sysctl keys, as sysctl.d(5) allows them: `net.ipv4.conf.*.rp_filter`,
//! `net/ipv4/conf/eth?/rp_filter`, `[0-3]` classes — in profiles (pattern keys) and in
//! imported files.
//!
//! A [`Glob`] is one glob(3) pattern per path component (never matching across a separator),
//! split with the same first-separator rule as keys. Listing the keys of a live tree that match
//! is `adopt::glob::expand`'s job.

use std::fmt;

use crate::error::{Error, Result};
use crate::profile::key::SysctlKey;

/// Characters that make a key a glob (as systemd's `string_is_glob`).
pub const GLOB_CHARS: &[char] = &['*', '?', '['];

/// Whether `text` is a glob rather than a key.
pub fn is_glob(text: &str) -> bool {
    text.contains(GLOB_CHARS)
}

/// A glob such as `net.ipv4.conf.*.rp_filter` or `net/ipv4/conf/eth?/rp_filter`: each component
/// is matched like glob(3) (`*`, `?`, `[a-z]`, `[!x]`) and never across a separator.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Glob {
    components: Vec<String>,
}

impl Glob {
    /// Parses a glob with the first-separator rule of sysctl.d(5).
    pub fn parse(text: &str) -> Result<Self> {
        // Validate the shape with the glob characters neutralised, then keep the real components.
        let shape = SysctlKey::parse(&neutral(text)).map_err(|_| Error::Key {
            key: text.to_owned(),
            reason: "not a valid glob over sysctl keys".into(),
        })?;
        let components = crate::profile::key::split_separators(text);
        debug_assert_eq!(components.len(), shape.components().len());
        Ok(Self { components })
    }

    /// A key of the same shape with the glob characters replaced, standing in for the
    /// pattern where a key is needed before expansion.
    pub fn stand_in(&self) -> SysctlKey {
        SysctlKey::parse(&neutral(&self.to_string())).expect("a glob's shape is a key's")
    }

    /// The keys it matches among those every kernel has for a per-instance table: each glob
    /// component replaced by `all` or `default` where it matches them (`net.ipv4.conf.*.x` →
    /// the `all` and `default` keys), for expanding without a live tree.
    pub fn offline_matches(&self) -> Vec<SysctlKey> {
        const INSTANCES: [&str; 2] = ["all", "default"];
        let mut keys: Vec<Vec<String>> = vec![Vec::new()];
        for component in &self.components {
            let choices: Vec<String> = match is_glob(component) {
                true => INSTANCES
                    .iter()
                    .filter(|name| component_matches(component, name))
                    .map(|name| (*name).to_owned())
                    .collect(),
                false => vec![component.clone()],
            };
            keys = keys
                .iter()
                .flat_map(|prefix| {
                    choices.iter().map(move |c| {
                        let mut next = prefix.clone();
                        next.push(c.replace('.', "/"));
                        next
                    })
                })
                .collect();
        }
        keys.iter()
            .filter_map(|parts| SysctlKey::parse(&parts.join(".")).ok())
            .collect()
    }

    /// The component patterns.
    pub fn components(&self) -> &[String] {
        &self.components
    }

    /// Whether `key` matches.
    pub fn matches(&self, key: &SysctlKey) -> bool {
        self.components.len() == key.components().len()
            && self
                .components
                .iter()
                .zip(key.components())
                .all(|(p, c)| component_matches(p, c))
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .components
            .iter()
            .map(|c| c.replace('.', "/"))
            .collect();
        f.write_str(&parts.join("."))
    }
}

/// `text` with its glob characters replaced by a letter: a key of the same shape.
fn neutral(text: &str) -> String {
    text.chars()
        .map(|c| if "*?[]!^".contains(c) { 'x' } else { c })
        .collect()
}

/// glob(3)-style match of one path component: `*`, `?`, `[set]`, `[!set]`, `[a-z]`.
pub fn component_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches_from(&p, &n)
}

/// Matches left to right, backtracking only to the last `*` seen: O(pattern × name), where
/// retrying every split at every `*` was exponential (`*a*a*a…b` hung on a 40-character name).
fn matches_from(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    // After the last `*`: where the pattern resumes, and where the star's match ends.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p.get(pi) == Some(&'*') {
            pi += 1;
            star = Some((pi, ni));
            continue;
        }
        let step = n.get(ni).and_then(|&c| single(&p[pi..], c));
        match (step, star) {
            (Some(len), _) => (pi, ni) = (pi + len, ni + 1),
            (None, _) if ni == n.len() && pi == p.len() => return true,
            (None, Some((resume, end))) if end < n.len() => {
                star = Some((resume, end + 1));
                (pi, ni) = (resume, end + 1);
            }
            (None, _) => return false,
        }
    }
}

/// How many pattern characters at the start of `p` match the one character `c`; `None` when
/// they do not, or when `p` is empty or starts with `*`.
fn single(p: &[char], c: char) -> Option<usize> {
    match p.first()? {
        '*' => None,
        '?' => Some(1),
        '[' => match class(&p[1..]) {
            Some((set, len)) => set(c).then_some(1 + len),
            None => (c == '[').then_some(1),
        },
        &literal => (literal == c).then_some(1),
    }
}

/// Parses a bracket class after `[`: a predicate and how many pattern chars it used (with `]`).
fn class(p: &[char]) -> Option<(impl Fn(char) -> bool, usize)> {
    let negate = matches!(p.first(), Some('!' | '^'));
    let start = usize::from(negate);
    // A `]` right after `[` or `[!` is a literal member.
    let close = p
        .iter()
        .enumerate()
        .skip(start + 1)
        .find(|(_, c)| **c == ']')
        .map(|(i, _)| i)?;
    let members: Vec<char> = p[start..close].to_vec();
    let test = move |c: char| {
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
        hit != negate
    };
    Some((test, close + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> SysctlKey {
        SysctlKey::parse(text).unwrap()
    }

    #[test]
    fn globs_match_per_component() {
        for (pattern, name, expected) in [
            ("*", "eth0", true),
            ("eth*", "eth0.100", true),
            ("eth?", "eth10", false),
            ("eth[0-3]", "eth2", true),
            ("eth[!0-3]", "eth2", false),
            ("eth[^0-3]", "eth7", true),
            ("[]x]", "]", true),
            ("a[", "a[", true),
            ("*_filter", "rp_filter", true),
            ("*_filter", "rp_filterx", false),
        ] {
            assert_eq!(
                component_matches(pattern, name),
                expected,
                "{pattern} {name}"
            );
        }
        let glob = Glob::parse("net/ipv4/conf/eth*/rp_filter").unwrap();
        assert!(glob.matches(&key("net.ipv4.conf.eth0/100.rp_filter")));
        assert!(!glob.matches(&key("net.ipv4.conf.lo.rp_filter")));
    }
}
