//! A small YAML reader that keeps line and column for every node.
//!
//! Profiles need positions (`file:line:col` on every finding), which serde-based YAML crates do
//! not expose, so profiles are read through saphyr-parser's event stream into a [`Node`] tree.
//! The reader is bounded on purpose: aliases are refused (no "billion laughs" expansion), nesting
//! is limited, duplicate mapping keys are errors, and so are multiple documents where one is
//! expected ([`parse`]; [`parse_all`] reads a stream of them). It knows nothing about
//! profiles; `profile` interprets the tree.

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Deepest nesting accepted; profiles need four levels.
const MAX_DEPTH: usize = 32;

/// A 1-based line and column in a source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Mark {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
}

impl Mark {
    fn from_span(span: &Span) -> Self {
        Self {
            line: span.start.line(),
            col: span.start.col() + 1,
        }
    }
}

/// A YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the node starts.
    pub mark: Mark,
    /// What it is.
    pub kind: NodeKind,
}

/// The three YAML node kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar's text, and whether it was plain (unquoted), which decides `null`/numbers.
    Scalar {
        /// The text.
        text: String,
        /// Unquoted (plain) style.
        plain: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping with scalar keys, in document order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The scalar text, if this is a scalar.
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether this is a plain `null`, `~` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// A short name of the node kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar { .. } if self.is_null() => "null",
            NodeKind::Scalar { .. } => "a scalar",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax or structure error with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    /// Where.
    pub mark: Mark,
    /// What.
    pub message: String,
}

/// Parses one YAML document. `Ok(None)` for an empty stream.
pub fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    let mut reader = Reader {
        events: Parser::new_from_str(text),
        depth: 0,
    };
    let mut document = None;
    loop {
        let (event, span) = reader.next()?;
        match event {
            Event::StreamEnd => return Ok(document),
            Event::DocumentStart(_) if document.is_some() => {
                return Err(YamlError {
                    mark: Mark::from_span(&span),
                    message: "only one YAML document is allowed".into(),
                });
            }
            Event::DocumentStart(_) => document = reader.document()?,
            _ => {}
        }
    }
}

/// Parses every document of a stream (`---`-separated, as Kubernetes manifests are written),
/// skipping empty (null) ones. The same bounds as [`parse`]: no aliases, bounded nesting.
pub fn parse_all(text: &str) -> Result<Vec<Node>, YamlError> {
    let mut reader = Reader {
        events: Parser::new_from_str(text),
        depth: 0,
    };
    let mut documents = Vec::new();
    loop {
        match reader.next()? {
            (Event::StreamEnd, _) => return Ok(documents),
            (Event::DocumentStart(_), _) => {
                documents.extend(reader.document()?.filter(|d| !d.is_null()));
            }
            _ => {}
        }
    }
}

struct Reader<'a> {
    events: Parser<'a, saphyr_parser::StrInput<'a>>,
    depth: usize,
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.events.next_event() {
            Some(Ok(pair)) => Ok(pair),
            Some(Err(e)) => {
                let m = e.marker();
                Err(YamlError {
                    mark: Mark {
                        line: m.line(),
                        col: m.col() + 1,
                    },
                    message: e.info().to_owned(),
                })
            }
            None => Ok((Event::StreamEnd, Span::default())),
        }
    }

    /// Reads the body of a document up to its end event.
    fn document(&mut self) -> Result<Option<Node>, YamlError> {
        let (event, span) = self.next()?;
        if matches!(event, Event::DocumentEnd) {
            return Ok(None);
        }
        let node = self.node(event, span)?;
        match self.next()? {
            (Event::DocumentEnd, _) => Ok(Some(node)),
            (_, span) => Err(YamlError {
                mark: Mark::from_span(&span),
                message: "unexpected content after the document".into(),
            }),
        }
    }

    fn node(&mut self, event: Event<'a>, span: Span) -> Result<Node, YamlError> {
        let mark = Mark::from_span(&span);
        match event {
            Event::Scalar(text, style, _, _) => Ok(Node {
                mark,
                kind: NodeKind::Scalar {
                    text: text.into_owned(),
                    plain: style == ScalarStyle::Plain,
                },
            }),
            Event::SequenceStart(..) => self.nested(mark, Self::sequence),
            Event::MappingStart(..) => self.nested(mark, Self::mapping),
            Event::Alias(_) => Err(YamlError {
                mark,
                message: "YAML aliases (*name) are not allowed in profiles".into(),
            }),
            _ => Err(YamlError {
                mark,
                message: "unexpected YAML event".into(),
            }),
        }
    }

    fn nested(
        &mut self,
        mark: Mark,
        read: fn(&mut Self, Mark) -> Result<NodeKind, YamlError>,
    ) -> Result<Node, YamlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(YamlError {
                mark,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        let kind = read(self, mark)?;
        self.depth -= 1;
        Ok(Node { mark, kind })
    }

    fn sequence(&mut self, _mark: Mark) -> Result<NodeKind, YamlError> {
        let mut items = Vec::new();
        loop {
            let (event, span) = self.next()?;
            if matches!(event, Event::SequenceEnd) {
                return Ok(NodeKind::Seq(items));
            }
            items.push(self.node(event, span)?);
        }
    }

    fn mapping(&mut self, _mark: Mark) -> Result<NodeKind, YamlError> {
        let mut entries: Vec<(Node, Node)> = Vec::new();
        loop {
            let (event, span) = self.next()?;
            if matches!(event, Event::MappingEnd) {
                return Ok(NodeKind::Map(entries));
            }
            let key = self.node(event, span)?;
            let Some(name) = key.as_scalar() else {
                return Err(YamlError {
                    mark: key.mark,
                    message: "mapping keys must be plain scalars".into(),
                });
            };
            if let Some((first, _)) = entries.iter().find(|(k, _)| k.as_scalar() == Some(name)) {
                return Err(YamlError {
                    mark: key.mark,
                    message: format!("duplicate key {name:?} (first at line {})", first.mark.line),
                });
            }
            let (event, span) = self.next()?;
            let value = self.node(event, span)?;
            entries.push((key, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let node = parse("a: 1\nb:\n  c: [1, 2]\n").unwrap().unwrap();
        let NodeKind::Map(entries) = &node.kind else {
            panic!()
        };
        assert_eq!(entries[1].0.mark, Mark { line: 2, col: 1 });
        let NodeKind::Map(inner) = &entries[1].1.kind else {
            panic!()
        };
        assert_eq!(inner[0].0.mark, Mark { line: 3, col: 3 });
        assert_eq!(inner[0].1.mark, Mark { line: 3, col: 6 });
    }

    #[test]
    fn hostile_documents_are_refused() {
        let cases = [
            ("a: &x [1]\nb: *x\n", "aliases"),
            ("a: 1\na: 2\n", "duplicate key \"a\""),
            ("a: 1\n---\nb: 2\n", "one YAML document"),
            ("a: [1, 2\n", ""),
            ("? [1]\n: 2\n", "plain scalars"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.message.contains(expected), "{text:?}: {err:?}");
        }
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(parse(&deep).unwrap_err().message.contains("nesting"));
    }

    #[test]
    fn streams_of_documents_keep_positions_and_skip_empty_ones() {
        let docs = parse_all("a: 1\n---\n---\n# nothing\n---\nb:\n  c: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        let NodeKind::Map(second) = &docs[1].kind else {
            panic!()
        };
        assert_eq!(second[0].0.mark, Mark { line: 6, col: 1 });
        assert!(parse_all("a: 1\n---\nb: *x\n").is_err());
        assert!(parse_all("").unwrap().is_empty());
    }

    #[test]
    fn empty_and_null_documents() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
        assert!(parse("~\n").unwrap().unwrap().is_null());
        assert!(!parse("'~'\n").unwrap().unwrap().is_null());
    }
}
