//! Reading sysctl.conf and sysctl.d files with systemd-sysctl and procps semantics.
//!
//! This module owns the file format: `key = value` and `key=value`, `#` and `;` comments, the `-`
//! prefix (a failure to set is ignored → the key is optional), globs (`net.ipv4.conf.*.rp_filter`)
//! and `-key` exclusions (globs: `glob`), `/` vs `.` separators with the first-separator rule (see `key`), and the
//! merge across files: a later assignment of a key replaces an earlier one, an explicit key always
//! beats a glob, and an exclusion keeps a glob off a key. [`parse`] is a pure function of the text;
//! [`Options::resolve`] expands globs against a live [`SysctlTree`] (read-only). Which files boot
//! reads, and in which order, is `boot`'s business; turning settings into YAML is `emit`'s.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::adopt::glob::{Glob, expand, is_glob};
use crate::error::{Error, Result};
use crate::kernel::SysctlTree;
use crate::profile::key::SysctlKey;
use crate::profile::value::{Value, is_ambiguous_number, parse_decimal};
use crate::profile::{Location, MAX_PROFILE_BYTES};
use crate::schema::Severity;
use crate::schema::rules::CodeRule;

/// Where a line comes from: `file:line`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Origin {
    /// The file as named.
    pub file: Arc<str>,
    /// The line, from 1.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// What a line names: one key, or a glob over keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Name {
    /// A literal key.
    Key(SysctlKey),
    /// A glob, one pattern per path component.
    Glob(Glob),
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Key(key) => key.fmt(f),
            Name::Glob(glob) => glob.fmt(f),
        }
    }
}

/// One meaningful line of a sysctl.d file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key or glob.
    pub name: Name,
    /// The value; `None` for a `-key` exclusion.
    pub value: Option<String>,
    /// `-` prefix: failing to set it is not an error.
    pub optional: bool,
    /// Where it is written.
    pub at: Origin,
    /// Text after the value that looks like a comment (` # …`, ` ; …`): sysctl.d has none
    /// there, so the kernel is given it too.
    pub inline_comment: Option<InlineComment>,
}

/// The rules `import` reports by (see `sysprof explain ID`).
pub const RULES: &[CodeRule] = &[CodeRule {
    id: INLINE_COMMENT,
    severity: Severity::Warning,
    summary: "a `# …` or `; …` after a value in a sysctl.d file: not a comment there (`sysctl -p` and systemd-sysctl write it to the kernel, which keeps or refuses it); imported without it",
    sources: &[
        "sysctl.d(5)",
        "procps sysctl.c (-p reads the value to the line's end)",
    ],
}];

/// The id of the inline-comment warning.
pub const INLINE_COMMENT: &str = "inline-comment";

/// A `# …` or `; …` after a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineComment {
    /// The text from the `#` or `;` on (left out of the imported value).
    pub text: String,
    /// Whether the value is numbers, which the kernel's number parsers read up to the comment
    /// (`31 # shorter` sets 31); any other value reaches the kernel with the comment in it.
    pub after_numbers: bool,
}

impl Entry {
    /// The warning an inline comment deserves, if the entry has one.
    pub fn inline_comment_warning(&self) -> Option<String> {
        let comment = self.inline_comment.as_ref()?;
        let value = self.value.as_deref().unwrap_or_default();
        let written = format!("{value} {}", comment.text);
        let kernel = match comment.after_numbers {
            true => "whose number parser stops before the comment: the same value",
            false => {
                "which stores or rejects the whole text (a name such as tcp_congestion_control's is refused)"
            }
        };
        Some(format!(
            "{}: sysctl.d has no inline comments: `sysctl -p` and systemd-sysctl write {written:?} to the kernel, {kernel}; imported as {} = {value}, without the comment: put it on a line of its own",
            self.at, self.name
        ))
    }
}

/// Splits `value` at a `#` or `;` that follows whitespace: (the value before it, the comment).
fn split_inline_comment(value: &str) -> (&str, Option<InlineComment>) {
    let bytes = value.as_bytes();
    let at = (1..bytes.len())
        .find(|&i| matches!(bytes[i], b'#' | b';') && bytes[i - 1].is_ascii_whitespace());
    let Some(at) = at else {
        return (value, None);
    };
    let before = value[..at].trim_end();
    let after_numbers = before
        .split_whitespace()
        .all(|t| parse_decimal(t).is_some());
    let comment = InlineComment {
        text: value[at..].to_owned(),
        after_numbers,
    };
    (before, Some(comment))
}

/// Parses the text of one file. Malformed lines are errors naming `file:line:col`.
pub fn parse(text: &str, file: &str) -> Result<Vec<Entry>> {
    let file: Arc<str> = file.into();
    let mut entries = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        let at = Origin {
            file: file.clone(),
            line: index + 1,
        };
        let col = raw.len() - raw.trim_start().len() + 1;
        entries.push(parse_line(line, at, col)?);
    }
    Ok(entries)
}

fn parse_line(line: &str, at: Origin, col: usize) -> Result<Entry> {
    let (key_text, value) = match line.split_once('=') {
        Some((k, v)) => (k.trim(), Some(v.trim())),
        None if line.starts_with('-') => (line, None),
        None => {
            return Err(line_error(
                &at,
                col,
                format!("{line:?} is not an assignment"),
                Some("write `key = value`, or `-key` to keep a glob off a key"),
            ));
        }
    };
    let (optional, key_text) = match key_text.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, key_text),
    };
    let name = parse_name(key_text).map_err(|e| line_error(&at, col, e.to_string(), None))?;
    let (value, inline_comment) = match value.map(split_inline_comment) {
        Some((value, comment)) => (Some(value), comment),
        None => (None, None),
    };
    if let Some(value) = value {
        check_value(&name, value, &at, col)?;
    }
    Ok(Entry {
        name,
        value: value.map(str::to_owned),
        optional,
        at,
        inline_comment,
    })
}

/// Parses a key or glob with the first-separator rule of sysctl.d(5).
pub fn parse_name(text: &str) -> Result<Name> {
    if !is_glob(text) {
        return SysctlKey::parse(text).map(Name::Key);
    }
    Glob::parse(text).map(Name::Glob)
}

fn check_value(name: &Name, value: &str, at: &Origin, col: usize) -> Result<()> {
    if let Some(bad) = value.split_whitespace().find(|t| is_ambiguous_number(t)) {
        return Err(line_error(
            at,
            col,
            format!("{name}: {bad:?} is not a plain decimal number"),
            Some("the kernel reads 010 as octal 8 and 0x10 as hex: write plain decimal"),
        ));
    }
    if let Some(bad) = value.chars().find(|c| c.is_control() && !c.is_whitespace()) {
        return Err(line_error(
            at,
            col,
            format!("{name}: control character {bad:?} in value"),
            None,
        ));
    }
    Ok(())
}

fn line_error(at: &Origin, col: usize, message: String, help: Option<&str>) -> Error {
    Error::Profile {
        at: Location {
            file: at.file.clone(),
            line: at.line,
            col,
        },
        message,
        help: help.map(str::to_owned),
        snippet: None,
    }
}

/// Reads and parses one file (at most 1 MiB of UTF-8, as profiles).
pub fn read_file(path: &Path) -> Result<Vec<Entry>> {
    let name = path.display().to_string();
    let bytes =
        crate::files::read(path, crate::files::Policy::input(MAX_PROFILE_BYTES)).map_err(|e| {
            let at = Origin {
                file: name.as_str().into(),
                line: 1,
            };
            line_error(&at, 1, format!("cannot read it: {e}"), None)
        })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let at = Origin {
            file: name.as_str().into(),
            line: valid.iter().filter(|&&b| b == b'\n').count() + 1,
        };
        line_error(&at, 1, "file is not valid UTF-8".into(), None)
    })?;
    parse(&text, &name)
}

/// The merged options of several files, in the order systemd-sysctl applies them.
#[derive(Debug, Clone, Default)]
pub struct Options {
    order: Vec<Entry>,
    index: HashMap<Name, usize>,
}

impl Options {
    /// Merges `files` in order (later files override earlier ones).
    pub fn read(files: &[impl AsRef<Path>]) -> Result<Self> {
        let mut options = Self::default();
        for file in files {
            options.add(read_file(file.as_ref())?);
        }
        Ok(options)
    }

    /// Adds the entries of one file. Re-assigning the same value only widens `optional`; a
    /// different value (or an exclusion) replaces the earlier entry and moves it last.
    pub fn add(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            if let Some(&i) = self.index.get(&entry.name) {
                let existing = &mut self.order[i];
                if existing.value == entry.value {
                    existing.optional |= entry.optional;
                    continue;
                }
                self.order.remove(i);
                self.reindex();
            }
            self.index.insert(entry.name.clone(), self.order.len());
            self.order.push(entry);
        }
    }

    fn reindex(&mut self) {
        self.index = self
            .order
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
    }

    /// The entries in application order.
    pub fn entries(&self) -> &[Entry] {
        &self.order
    }

    /// The entry for a literal key, if any file names it (the assignment that wins, or an
    /// exclusion).
    pub fn explicit(&self, key: &SysctlKey) -> Option<&Entry> {
        self.index
            .get(&Name::Key(key.clone()))
            .map(|&i| &self.order[i])
    }

    /// The settings these options produce on `tree`: globs expanded against it, explicit keys
    /// and exclusions keeping globs off their keys, later entries winning.
    pub fn resolve(&self, tree: &SysctlTree) -> Resolution {
        let explicit: HashSet<&SysctlKey> = self
            .order
            .iter()
            .filter_map(|e| match &e.name {
                Name::Key(k) => Some(k),
                Name::Glob(_) => None,
            })
            .collect();
        let mut out = Resolution::default();
        for entry in &self.order {
            let Some(value) = &entry.value else {
                out.excluded.push(entry.clone());
                continue;
            };
            let keys = match &entry.name {
                Name::Key(key) => vec![key.clone()],
                Name::Glob(glob) => {
                    let found = expand(glob, tree);
                    if found.is_empty() {
                        out.unmatched.push(entry.clone());
                    }
                    found
                        .into_iter()
                        .filter(|k| !explicit.contains(k))
                        .collect()
                }
            };
            for key in keys {
                let imported = Imported {
                    value: Value::from_text(value),
                    optional: entry.optional,
                    glob: matches!(entry.name, Name::Glob(_)).then(|| entry.name.to_string()),
                    at: entry.at.clone(),
                };
                out.settings.insert(key, imported);
            }
        }
        out
    }
}

/// One key after resolution.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Imported {
    /// The value to set.
    pub value: Value,
    /// Whether failing to set it is ignored (`-` prefix).
    pub optional: bool,
    /// The glob that produced it, if any.
    pub glob: Option<String>,
    /// The line it comes from.
    pub at: Origin,
}

/// What a set of files means on one tree.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// Keys and values, in key order.
    pub settings: BTreeMap<SysctlKey, Imported>,
    /// Globs that matched no key on this tree.
    pub unmatched: Vec<Entry>,
    /// `-key` exclusions in effect.
    pub excluded: Vec<Entry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> SysctlKey {
        SysctlKey::parse(text).unwrap()
    }

    fn fake(keys: &[&str]) -> (tempfile::TempDir, SysctlTree) {
        let dir = tempfile::tempdir().unwrap();
        for k in keys {
            let path = dir.path().join(key(k).rel_path());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "0\n").unwrap();
        }
        let tree = SysctlTree::open(dir.path()).unwrap();
        (dir, tree)
    }

    #[test]
    fn lines_follow_sysctl_d_syntax() {
        let text = "# comment\n; also a comment\n\n  net.ipv4.tcp_fin_timeout=30  \n\
                    net/ipv4/conf/eth0.100/rp_filter = 2\n-net.ipv4.tcp_fastopen = 3\n\
                    net.ipv4.ip_local_port_range = 10240   65535\n-net.ipv4.conf.all.rp_filter\n\
                    net.ipv4.conf.*.arp_ignore = 1\nkernel.domainname =\n";
        let entries = parse(text, "a.conf").unwrap();
        let shown: Vec<(String, Option<&str>, bool, usize)> = entries
            .iter()
            .map(|e| {
                (
                    e.name.to_string(),
                    e.value.as_deref(),
                    e.optional,
                    e.at.line,
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("net.ipv4.tcp_fin_timeout".into(), Some("30"), false, 4),
                (
                    "net.ipv4.conf.eth0/100.rp_filter".into(),
                    Some("2"),
                    false,
                    5
                ),
                ("net.ipv4.tcp_fastopen".into(), Some("3"), true, 6),
                (
                    "net.ipv4.ip_local_port_range".into(),
                    Some("10240   65535"),
                    false,
                    7
                ),
                ("net.ipv4.conf.all.rp_filter".into(), None, true, 8),
                ("net.ipv4.conf.*.arp_ignore".into(), Some("1"), false, 9),
                ("kernel.domainname".into(), Some(""), false, 10),
            ]
        );
        assert!(matches!(entries[5].name, Name::Glob(_)));
        assert_eq!(entries[0].at.to_string(), "a.conf:4");
    }

    #[test]
    fn malformed_lines_name_file_line_and_column() {
        let cases = [
            (
                "net.ipv4.tcp_fin_timeout 30\n",
                "x.conf:1:1",
                "not an assignment",
            ),
            (
                "\n  ../etc/passwd = 1\n",
                "x.conf:2:3",
                "leave the sysctl root",
            ),
            (
                "net.ipv4.tcp_fin_timeout = 030\n",
                "x.conf:1:1",
                "plain decimal",
            ),
            (
                "net.ipv4.tcp_fin_timeout = 0x1e\n",
                "x.conf:1:1",
                "plain decimal",
            ),
            ("a.b = 1\x07\n", "x.conf:1:1", "control character"),
            (" = 1\n", "x.conf:1:2", "empty"),
            ("net.ipv4.conf.*$.rp_filter = 1\n", "x.conf:1:1", "glob"),
            (
                "/proc/sys/net/ipv4/tcp_fin_timeout = 1\n",
                "x.conf:1:1",
                "absolute",
            ),
        ];
        for (text, at, expected) in cases {
            let err = parse(text, "x.conf").unwrap_err();
            assert_eq!(err.exit_code(), crate::error::exit::INVALID_INPUT);
            let shown = format!("{err} {}", err.help().unwrap_or_default());
            assert!(
                shown.starts_with(at) && shown.contains(expected),
                "{text:?}: {shown}"
            );
        }
    }

    #[test]
    fn later_files_win_explicit_keys_beat_globs_and_exclusions_hold() {
        let (_dir, tree) = fake(&[
            "net.ipv4.conf.all.rp_filter",
            "net.ipv4.conf.default.rp_filter",
            "net.ipv4.conf.lo.rp_filter",
            "net.ipv4.conf.hub0.rp_filter",
            "net.ipv4.tcp_fin_timeout",
        ]);
        let mut options = Options::default();
        options.add(
            parse(
                "net.ipv4.tcp_fin_timeout = 60\nnet.ipv4.conf.*.rp_filter = 2\n-net.ipv4.conf.all.rp_filter\n",
                "10-a.conf",
            )
            .unwrap(),
        );
        options.add(
            parse(
                "net.ipv4.conf.hub0.rp_filter = 1\nnet.ipv4.tcp_fin_timeout = 30\n-net.ipv4.tcp_fin_timeout = 30\nnet.ipv4.conf.x*.rp_filter = 1\n",
                "20-b.conf",
            )
            .unwrap(),
        );
        let resolved = options.resolve(&tree);
        let shown: Vec<(String, String, bool, String)> = resolved
            .settings
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.value.to_string(),
                    v.optional,
                    v.at.to_string(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "net.ipv4.conf.default.rp_filter".into(),
                    "2".into(),
                    false,
                    "10-a.conf:2".into()
                ),
                (
                    "net.ipv4.conf.hub0.rp_filter".into(),
                    "1".into(),
                    false,
                    "20-b.conf:1".into()
                ),
                (
                    "net.ipv4.conf.lo.rp_filter".into(),
                    "2".into(),
                    false,
                    "10-a.conf:2".into()
                ),
                (
                    "net.ipv4.tcp_fin_timeout".into(),
                    "30".into(),
                    true,
                    "20-b.conf:2".into()
                ),
            ]
        );
        assert_eq!(resolved.unmatched.len(), 1);
        assert_eq!(resolved.excluded.len(), 1);
        let all = key("net.ipv4.conf.all.rp_filter");
        assert_eq!(options.explicit(&all).unwrap().value, None);
    }

    #[test]
    fn an_exclusion_after_an_assignment_removes_it() {
        let (_dir, tree) = fake(&["net.ipv4.tcp_fin_timeout"]);
        let mut options = Options::default();
        options.add(parse("net.ipv4.tcp_fin_timeout = 30\n", "a").unwrap());
        options.add(parse("-net/ipv4/tcp_fin_timeout\n", "b").unwrap());
        assert!(options.resolve(&tree).settings.is_empty());
    }
}
