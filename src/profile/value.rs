//! Sysctl values and the way the kernel normalises them.
//!
//! A [`Value`] is a list of whitespace-separated tokens: one for scalars, several for tuples
//! (`tcp_rmem`, `ip_local_port_range`). The kernel prints tuples with tabs and accepts any
//! whitespace, prints integers in plain decimal, and prints port lists sorted and merged
//! (`70,8080-8081`). [`Value::same_as`] compares the way the kernel would see two values, so a
//! profile's `[1024, 65535]` equals the kernel's `1024\t65535`. Parsing numbers here is decimal
//! only: the kernel reads `010` as octal 8, so profiles never contain leading zeros (the
//! profile loader rejects them).

use std::fmt;

/// A sysctl value as tokens, and the text as written for values that are not numbers.
///
/// Numeric values (integers, tuples, port lists) are their tokens: the kernel splits them on
/// any whitespace and prints tuples with tabs. A string value is written exactly as given
/// (`kernel.core_pattern = |/usr/lib/systemd/systemd-coredump %P %u …`): joining its words with
/// tabs would change what the kernel stores.
#[derive(Debug, Clone, Default)]
pub struct Value {
    tokens: Vec<String>,
    /// The text without the trailing newline the kernel prints.
    text: String,
}

impl Value {
    /// A value from text: split the way the kernel splits numbers (any mix of spaces, tabs
    /// and newlines), with the text itself kept for strings.
    pub fn from_text(text: &str) -> Self {
        let text = text.strip_suffix('\n').unwrap_or(text);
        Self {
            tokens: text.split_whitespace().map(str::to_owned).collect(),
            text: text.trim().to_owned(),
        }
    }

    /// Builds a value from already separated tokens (a YAML list), joined by spaces.
    pub fn from_tokens(tokens: Vec<String>) -> Self {
        let tokens: Vec<String> = tokens
            .into_iter()
            .flat_map(|t| Self::from_text(&t).tokens)
            .collect();
        let text = tokens.join(" ");
        Self { tokens, text }
    }

    /// Whether every token is a number or a port list: then the tokens are the value.
    fn numeric(&self) -> bool {
        self.tokens
            .iter()
            .all(|t| parse_decimal(t).is_some() || parse_port_list(t).is_some())
    }

    /// The tokens.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// Whether the value has no tokens (an empty list such as `ip_local_reserved_ports`).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The value as one integer, if it is a single decimal integer token.
    pub fn as_int(&self) -> Option<i128> {
        match self.tokens.as_slice() {
            [one] => parse_decimal(one),
            _ => None,
        }
    }

    /// The `index`th token as an integer.
    pub fn int_at(&self, index: usize) -> Option<i128> {
        self.tokens.get(index).and_then(|t| parse_decimal(t))
    }

    /// The value's text as given (trimmed), spaces inside kept.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text written to the kernel, newline-terminated: numbers separated by tabs (as the
    /// kernel prints tuples), a string exactly as given.
    pub fn to_kernel_text(&self) -> String {
        let mut text = match self.numeric() {
            true => self.tokens.join("\t"),
            false => self.text.clone(),
        };
        text.push('\n');
        text
    }

    /// Whether the kernel would consider both values equal.
    pub fn same_as(&self, other: &Value) -> bool {
        self.tokens.len() == other.tokens.len()
            && self
                .tokens
                .iter()
                .zip(&other.tokens)
                .all(|(a, b)| canonical_token(a) == canonical_token(b))
    }
}

impl PartialEq for Value {
    /// The same tokens, and for a string the same text (the spacing of numbers is not part of
    /// the value).
    fn eq(&self, other: &Self) -> bool {
        self.tokens == other.tokens && (self.numeric() || self.text == other.text)
    }
}

impl Eq for Value {}

impl fmt::Display for Value {
    /// As in a sysctl.d file: numbers space-separated, a string as given.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.numeric() {
            true => f.write_str(&self.tokens.join(" ")),
            false => f.write_str(&self.text),
        }
    }
}

impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(d).map(|text| Self::from_text(&text))
    }
}

/// Parses a plain decimal integer: optional `-`, digits, no leading zeros, no `+`, no `0x`.
pub fn parse_decimal(token: &str) -> Option<i128> {
    let digits = token.strip_prefix('-').unwrap_or(token);
    let plain = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    if !plain || (digits.len() > 1 && digits.starts_with('0')) || digits.len() > 30 {
        return None;
    }
    token.parse().ok()
}

/// Whether a token is an integer the kernel would read differently than a human (`010` is
/// octal 8 to the kernel, `0x10` hex, `+5` accepted by strtoul).
pub fn is_ambiguous_number(token: &str) -> bool {
    let digits = token.strip_prefix(['-', '+']).unwrap_or(token);
    let numeric = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    let hex = digits.len() > 2 && (digits.starts_with("0x") || digits.starts_with("0X"));
    (numeric && parse_decimal(token).is_none()) || hex
}

/// Normalises one token the way the kernel prints it.
fn canonical_token(token: &str) -> String {
    if let Some(n) = parse_decimal(token) {
        return n.to_string();
    }
    match parse_port_list(token) {
        Some(ranges) => render_port_list(&ranges),
        None => token.to_owned(),
    }
}

/// Parses `8080,9000-9010` into sorted, merged inclusive ranges. `None` if it is not one.
pub fn parse_port_list(token: &str) -> Option<Vec<(u32, u32)>> {
    let mut ranges = Vec::new();
    for part in token.split(',') {
        let (low, high) = part.split_once('-').unwrap_or((part, part));
        let low: u32 = parse_decimal(low)?.try_into().ok()?;
        let high: u32 = parse_decimal(high)?.try_into().ok()?;
        if low > high {
            return None;
        }
        ranges.push((low, high));
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (low, high) in ranges {
        match merged.last_mut() {
            // Saturating: a range ending at u32::MAX absorbs everything after it.
            Some(last) if low <= last.1.saturating_add(1) => last.1 = last.1.max(high),
            _ => merged.push((low, high)),
        }
    }
    Some(merged)
}

fn render_port_list(ranges: &[(u32, u32)]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_compare_across_whitespace_styles() {
        let kernel = Value::from_text("1024\t65535\n");
        let profile = Value::from_tokens(vec!["1024".into(), "65535".into()]);
        assert!(kernel.same_as(&profile));
        assert!(Value::from_text(" 1024   65535 ").same_as(&kernel));
        assert!(!Value::from_text("1024 65534").same_as(&kernel));
        assert!(!Value::from_text("1024").same_as(&kernel));
        assert_eq!(profile.to_kernel_text(), "1024\t65535\n");
        assert_eq!(profile.to_string(), "1024 65535");
    }

    #[test]
    fn strings_are_written_exactly_as_given() {
        let pattern = "|/usr/lib/systemd/systemd-coredump %P %u %g %s %t 9223372036854775808 %h";
        let value = Value::from_text(&format!("{pattern}\n"));
        assert_eq!(value.to_kernel_text(), format!("{pattern}\n"));
        assert_eq!(value.to_string(), pattern);
        assert!(value.same_as(&Value::from_text(pattern)));
        let word = Value::from_text("bbr");
        assert_eq!(word.to_kernel_text(), "bbr\n");
    }

    #[test]
    fn port_lists_compare_as_the_kernel_prints_them() {
        let written = Value::from_text("9000-9010,8080,8081,70");
        let read_back = Value::from_text("70,8080-8081,9000-9010");
        assert!(written.same_as(&read_back));
        assert!(!written.same_as(&Value::from_text("70,8080,9000-9010")));
        assert!(Value::from_text("").same_as(&Value::from_text("\n")));
    }

    #[test]
    fn decimal_parsing_refuses_what_the_kernel_reads_otherwise() {
        assert_eq!(parse_decimal("60"), Some(60));
        assert_eq!(parse_decimal("-1"), Some(-1));
        assert_eq!(parse_decimal("0"), Some(0));
        for text in ["010", "0x10", "+5", "1e3", "", "-", "12a"] {
            assert_eq!(parse_decimal(text), None, "{text}");
        }
        assert!(is_ambiguous_number("010"));
        assert!(is_ambiguous_number("0x1f"));
        assert!(is_ambiguous_number("+5"));
        assert!(!is_ambiguous_number("10"));
        assert!(!is_ambiguous_number("cubic"));
    }
}
