//! Small typed readers for the profile sections that `health` and `rollout` own.
//!
//! `profile` hands those modules the YAML node of their top-level section; these helpers turn
//! nodes into numbers, durations, strings and field lists with `file:line:col` on every error,
//! the same way `profile` reports its own fields. Nothing here knows what a gate or a stage is.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::profile::Location;
use crate::profile::yaml::{Node, NodeKind};

/// Where a node is.
pub fn at(file: &Arc<str>, node: &Node) -> Location {
    Location {
        file: file.clone(),
        line: node.mark.line.max(1),
        col: node.mark.col.max(1),
    }
}

/// A profile error at a node.
pub fn error(file: &Arc<str>, node: &Node, message: String, help: Option<&str>) -> Error {
    Error::Profile {
        at: at(file, node),
        message,
        help: help.map(str::to_owned),
        snippet: None,
    }
}

/// The entries of a mapping (null counts as empty).
pub fn mapping<'n>(node: &'n Node, file: &Arc<str>, what: &str) -> Result<&'n [(Node, Node)]> {
    match &node.kind {
        NodeKind::Map(entries) => Ok(entries),
        _ if node.is_null() => Ok(&[]),
        _ => Err(error(
            file,
            node,
            format!("`{what}` must be a mapping, not {}", node.kind_name()),
            None,
        )),
    }
}

/// The items of a sequence (null counts as empty).
pub fn sequence<'n>(node: &'n Node, file: &Arc<str>, what: &str) -> Result<&'n [Node]> {
    match &node.kind {
        NodeKind::Seq(items) => Ok(items),
        _ if node.is_null() => Ok(&[]),
        _ => Err(error(
            file,
            node,
            format!("`{what}` must be a list, not {}", node.kind_name()),
            None,
        )),
    }
}

/// A non-null scalar as text.
pub fn text(node: &Node, file: &Arc<str>, what: &str) -> Result<String> {
    match node.as_scalar() {
        Some(t) if !node.is_null() => Ok(t.to_owned()),
        _ => Err(error(
            file,
            node,
            format!("`{what}` must be a string, not {}", node.kind_name()),
            None,
        )),
    }
}

/// A finite, non-negative number.
pub fn number(node: &Node, file: &Arc<str>, what: &str) -> Result<f64> {
    node.as_scalar()
        .and_then(|t| t.trim().parse::<f64>().ok())
        .filter(|n| n.is_finite() && *n >= 0.0)
        .ok_or_else(|| {
            error(
                file,
                node,
                format!("`{what}` must be a non-negative number"),
                None,
            )
        })
}

/// A duration such as `90s`, `5m`, `1h 30m` (a bare number is seconds).
pub fn duration(node: &Node, file: &Arc<str>, what: &str) -> Result<Duration> {
    let raw = text(node, file, what)?;
    parse_duration(&raw).map_err(|why| {
        error(
            file,
            node,
            format!("`{what}`: {why}"),
            Some("write a duration such as 30s, 5m or 1h"),
        )
    })
}

/// The longest duration sysprof accepts anywhere (watch windows, confirm deadlines, intervals):
/// a year. Anything longer is a typo, and deadlines must stay far from clock overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses `90s`, `5m`, `1h 30m`, `500ms`, or a bare number of seconds, up to [`MAX_DURATION`].
pub fn parse_duration(raw: &str) -> std::result::Result<Duration, String> {
    let raw = raw.trim();
    let shown = crate::error::shorten(raw);
    let parsed = match raw.parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => {
            humantime::parse_duration(raw).map_err(|e| format!("{shown:?} is not a duration ({e})"))
        }
    }?;
    if parsed > MAX_DURATION {
        return Err(format!(
            "{shown:?} is longer than a year (366d), the most sysprof accepts"
        ));
    }
    Ok(parsed)
}

/// Refuses a field not in `expected`, with a did-you-mean.
pub fn unknown(file: &Arc<str>, key: &Node, what: &str, expected: &[&str]) -> Error {
    let name = key.as_scalar().unwrap_or_default();
    let help = match crate::error::closest(name, expected.iter().copied()) {
        Some(s) => format!(
            "did you mean `{s}`? expected one of: {}",
            expected.join(", ")
        ),
        None => format!("expected one of: {}", expected.join(", ")),
    };
    Error::Profile {
        at: at(file, key),
        message: format!("unknown {what} `{name}`"),
        help: Some(help),
        snippet: None,
    }
}

/// Seconds as a number, for JSON (`Duration` would serialise as a struct).
pub fn secs<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// [`secs`] for optional durations.
pub fn opt_secs<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_or_bare_seconds() {
        assert_eq!(parse_duration("120"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-5s").is_err());
        assert_eq!(parse_duration("366d"), Ok(MAX_DURATION));
        for huge in [
            "18446744073709551615s",
            "18446744073709551615",
            "600000000y",
            "367d",
        ] {
            assert!(parse_duration(huge).is_err(), "{huge}");
        }
    }
}
