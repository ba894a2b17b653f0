//! Where each value of a YAML document stands, by JSON pointer, so that errors found on the
//! parsed value (schema, semantic checks) can name `file:line:column`.
//!
//! A value built by serde gives no positions, so the same text is read a second time with
//! serde-saphyr's event parser (granit-parser), which marks every node. It reads events and
//! builds nothing: aliases are not followed, so this costs time and memory linear in the text.

use std::collections::HashMap;
use std::fmt;

use serde_saphyr::granit_parser::{Event, Marker, Parser, ScalarStyle, Span, SpannedEventReceiver};

/// A 1-based line and column in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        // The parser counts lines from 1 and columns from 0.
        Pos {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// Positions of the nodes of one YAML document, by JSON pointer (`/environments/shop/ttl`).
#[derive(Debug, Default, Clone)]
pub struct Positions {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
    quoted: std::collections::HashSet<String>,
    duplicates: Vec<Duplicate>,
}

/// A key given twice in one mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// The key.
    pub key: String,
    /// Where it stands first.
    pub first: Pos,
    /// Where it stands again.
    pub again: Pos,
}

impl Positions {
    /// Index the first document of `text`. Text that does not parse gives an empty index: the
    /// parse error itself is reported by the caller, with the parser's position.
    pub fn index(text: &str) -> Positions {
        // Past this, what is not indexed falls back to its nearest indexed ancestor.
        let cap = text.len().saturating_mul(16).saturating_add(1 << 20);
        let mut builder = Builder {
            cap,
            ..Builder::default()
        };
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut builder, false);
        builder.positions
    }

    /// Whether the scalar at `pointer` is written in quotes.
    pub fn is_quoted(&self, pointer: &str) -> bool {
        self.quoted.contains(pointer)
    }

    /// Keys given more than once in one mapping, in file order.
    pub fn duplicates(&self) -> &[Duplicate] {
        &self.duplicates
    }

    /// Position of the value at `pointer`; for a missing pointer, the nearest ancestor's.
    pub fn value(&self, pointer: &str) -> Pos {
        self.lookup(&self.values, pointer)
    }

    /// Position of the key that names the value at `pointer` (the value's own for the root and
    /// list items); for a missing pointer, the nearest ancestor's.
    pub fn key(&self, pointer: &str) -> Pos {
        self.lookup(&self.keys, pointer)
    }

    fn lookup(&self, map: &HashMap<String, Pos>, pointer: &str) -> Pos {
        let mut p = pointer;
        loop {
            if let Some(pos) = map.get(p).or_else(|| self.values.get(p)) {
                return *pos;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Pos { line: 1, column: 1 },
            }
        }
    }
}

/// Escape one JSON pointer segment (RFC 6901).
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

enum Frame {
    Map {
        pointer: String,
        pending_key: Option<(String, Pos)>,
        seen: HashMap<String, Pos>,
    },
    Seq {
        pointer: String,
        next: usize,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    positions: Positions,
    done: bool,
    /// Bytes of pointers indexed so far, and the most there may be: a pointer repeats the
    /// keys above it, so long keys nested deep would cost depth times the text.
    spent: usize,
    cap: usize,
}

impl Builder {
    /// The pointer of a node starting now, or `None` when the scalar is a mapping key.
    fn place(&mut self, scalar: Option<&str>, pos: Pos) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { pointer, next }) => {
                let p = format!("{pointer}/{next}");
                *next += 1;
                self.positions.keys.insert(p.clone(), pos);
                Some(p)
            }
            Some(Frame::Map {
                pointer,
                pending_key,
                seen,
            }) => match pending_key.take() {
                Some((key, key_pos)) => {
                    let p = format!("{pointer}/{}", escape(&key));
                    match seen.get(&key) {
                        Some(first) => self.positions.duplicates.push(Duplicate {
                            key,
                            first: *first,
                            again: key_pos,
                        }),
                        None => {
                            seen.insert(key, key_pos);
                            self.positions.keys.insert(p.clone(), key_pos);
                        }
                    }
                    Some(p)
                }
                None => {
                    // A key: non-scalar keys are not used by environments.yaml; they get "?".
                    *pending_key = Some((scalar.unwrap_or("?").to_string(), pos));
                    None
                }
            },
        }
    }
}

impl<'input> SpannedEventReceiver<'input> for Builder {
    fn on_event(&mut self, ev: Event<'input>, span: Span) {
        if self.done {
            return;
        }
        let pos = Pos::from(span.start);
        let depth_bytes = match self.stack.last() {
            Some(Frame::Map { pointer, .. } | Frame::Seq { pointer, .. }) => pointer.len(),
            None => 0,
        };
        self.spent = self.spent.saturating_add(depth_bytes + 32);
        if self.spent > self.cap {
            self.done = true;
            return;
        }
        match ev {
            Event::Scalar(value, style, ..) => {
                if let Some(p) = self.place(Some(&value), pos) {
                    if matches!(style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted) {
                        self.positions.quoted.insert(p.clone());
                    }
                    self.positions.values.insert(p, pos);
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.place(None, pos) {
                    self.positions.values.insert(p, pos);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let pointer = self.place(None, pos).unwrap_or_else(|| "?".to_string());
                self.positions.values.insert(pointer.clone(), pos);
                self.stack.push(match ev {
                    Event::MappingStart(..) => Frame::Map {
                        pointer,
                        pending_key: None,
                        seen: HashMap::new(),
                    },
                    _ => Frame::Seq { pointer, next: 0 },
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::DocumentEnd => self.done = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "version: 1\nenvironments:\n  shop:\n    ttl: 7d\n    always: [main, \"release/x\"]\n    a/b: 1\n";

    #[test]
    fn values_and_keys_have_their_lines_and_columns() {
        let p = Positions::index(DOC);
        assert_eq!(
            p.value("/version"),
            Pos {
                line: 1,
                column: 10
            }
        );
        assert_eq!(p.key("/environments/shop/ttl"), Pos { line: 4, column: 5 });
        assert_eq!(
            p.value("/environments/shop/ttl"),
            Pos {
                line: 4,
                column: 10
            }
        );
        assert_eq!(
            p.value("/environments/shop/always/1"),
            Pos {
                line: 5,
                column: 20
            }
        );
        assert_eq!(p.key("/environments/shop/a~1b"), Pos { line: 6, column: 5 });
    }

    #[test]
    fn duplicate_keys_are_found_with_both_positions() {
        let p = Positions::index("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n");
        let d: Vec<(&str, usize, usize)> = p
            .duplicates()
            .iter()
            .map(|d| (d.key.as_str(), d.first.line, d.again.line))
            .collect();
        assert_eq!(d, [("c", 3, 4), ("a", 1, 5)]);
    }

    #[test]
    fn long_keys_nested_deep_are_indexed_in_memory_bounded_by_the_text() {
        let key = "k".repeat(1000);
        let mut text = String::new();
        for i in 0..120 {
            text += &format!("{}{key}:\n", " ".repeat(i * 2));
        }
        text += &format!(
            "{}leaf: {{{}}}\n",
            " ".repeat(240),
            (0..20_000)
                .map(|i| format!("a{i}: 1"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let p = Positions::index(&text);
        let held: usize = p.values.keys().chain(p.keys.keys()).map(String::len).sum();
        // Unbounded, the 20,000 entries would hold 120 KB of pointer each: 4.8 GB.
        assert!(
            held < text.len() * 64,
            "{held} bytes of pointers for {} of text",
            text.len()
        );
        assert_eq!(p.key(&format!("/{key}")), Pos { line: 1, column: 1 });
    }

    #[test]
    fn unknown_pointers_fall_back_to_the_nearest_ancestor() {
        let p = Positions::index(DOC);
        assert_eq!(
            p.value("/environments/shop/missing"),
            p.value("/environments/shop")
        );
        assert_eq!(
            Positions::index(": : bad").value("/x"),
            Pos { line: 1, column: 1 }
        );
    }
}
