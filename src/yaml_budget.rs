//! A bound on what parsing YAML may cost, checked on the event stream before the text is
//! parsed into values.
//!
//! serde_yaml stops the classic nested alias bomb, but counts alias uses, not what they copy:
//! a 50 KB file with one anchored list of 10,000 items used 10,000 times expands to 100
//! million values (gigabytes). Ordinary YAML costs about a hundred times its size once parsed,
//! and deeply nested flow collections (`[[[[...]]]]`) take it quadratic time before its
//! recursion limit says no. Text from a branch reaches the parser (rendered manifests, a
//! kustomization), so every parse of such text first walks the events, counting each node and
//! what each alias copies, and stops at the first node past the budget or the first level too
//! deep: linear time, constant memory.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};

/// Most nodes (scalars, sequences, mappings; what an alias copies counted again) of one text,
/// or of one staging's whole render. Five hundred objects of two hundred nodes each are 40% of
/// it; parsed, it takes about 100 MB (a million took 370 MB).
pub const MAX_NODES: u64 = 250_000;
/// Most nesting of collections. Kubernetes objects, CRD schemas included, stay under 40.
pub const MAX_DEPTH: usize = 100;

/// Why a text is refused before it is parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// More nodes than [`MAX_NODES`], aliases expanded.
    #[error("line {line}: more than {limit} YAML nodes (aliases counted with what they copy); a file built to expand (an alias bomb) or far more objects than a staging holds")]
    TooManyNodes {
        /// Where the budget ran out.
        line: usize,
        /// The budget.
        limit: u64,
    },
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("line {line}: collections nested more than {limit} deep")]
    TooDeep {
        /// Where.
        line: usize,
        /// The limit.
        limit: usize,
    },
    /// Not YAML.
    #[error("{message}")]
    Syntax {
        /// Where (1-based; 0: unknown).
        line: usize,
        /// Column (1-based).
        column: usize,
        /// What is wrong.
        message: String,
    },
}

impl BudgetError {
    /// The line it names.
    pub fn line(&self) -> usize {
        match self {
            BudgetError::TooManyNodes { line, .. }
            | BudgetError::TooDeep { line, .. }
            | BudgetError::Syntax { line, .. } => *line,
        }
    }
}

/// Walk the events of `text`; an error at the first node past the budget.
pub fn check(text: &str) -> Result<(), BudgetError> {
    check_with(text, MAX_NODES, MAX_DEPTH).map(drop)
}

/// Walk the events of `text` within what is `left` of a budget shared by several texts (one
/// staging's render), and take what it used from it.
pub fn charge(text: &str, left: &mut u64) -> Result<(), BudgetError> {
    let used = check_with(text, *left, MAX_DEPTH)?;
    *left -= used;
    Ok(())
}

/// [`check`] with other limits; the nodes counted.
pub fn check_with(text: &str, max_nodes: u64, max_depth: usize) -> Result<u64, BudgetError> {
    let mut parser = Parser::new_from_str(text);
    // Nodes under each anchor, by anchor id, once its node is complete.
    let mut anchored: HashMap<usize, u64> = HashMap::new();
    // Open collections: (anchor id, node count when it opened).
    let mut open: Vec<(usize, u64)> = Vec::new();
    let mut nodes: u64 = 0;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| BudgetError::Syntax {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: e.to_string(),
        })?;
        let line = mark.line();
        match event {
            Event::StreamEnd => return Ok(nodes),
            Event::Scalar(_, _, anchor, _) => {
                nodes += 1;
                if anchor > 0 {
                    anchored.insert(anchor, 1);
                }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                nodes += 1;
                open.push((anchor, nodes));
                if open.len() > max_depth {
                    return Err(BudgetError::TooDeep {
                        line,
                        limit: max_depth,
                    });
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, start)) = open.pop() {
                    if anchor > 0 {
                        anchored.insert(anchor, nodes - start + 1);
                    }
                }
            }
            // An alias of an anchor still open (a cycle) copies what it holds so far.
            Event::Alias(anchor) => {
                let copied = anchored.get(&anchor).copied().or_else(|| {
                    open.iter()
                        .find(|(a, _)| *a == anchor)
                        .map(|(_, start)| nodes - start + 1)
                });
                nodes = nodes.saturating_add(copied.unwrap_or(1));
            }
            Event::Nothing | Event::StreamStart | Event::DocumentStart | Event::DocumentEnd => {}
        }
        if nodes > max_nodes {
            return Err(BudgetError::TooManyNodes {
                line,
                limit: max_nodes,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_yaml_passes_and_anchors_are_counted_with_what_they_copy() {
        check("a: 1\nb: [1, 2, {c: d}]\n---\nx: &x {y: 1}\nz: *x\n").unwrap();
        // One list of 1,000 items used 1,000 times: a million values from 10 KB.
        let items = vec!["1"; 1000].join(",");
        let uses = vec!["*a"; 1000].join(",");
        let flat = format!("x: &a [{items}]\ny: [{uses}]\n");
        assert!(flat.len() < 12_000);
        assert!(matches!(
            check(&flat),
            Err(BudgetError::TooManyNodes { .. })
        ));
        // Nested aliases multiply.
        let mut nested = String::from("a0: &a0 [1,1,1,1,1,1,1,1,1,1]\n");
        for i in 1..7 {
            nested += &format!(
                "a{i}: &a{i} [{}]\n",
                vec![format!("*a{}", i - 1); 10].join(",")
            );
        }
        assert!(matches!(
            check(&nested),
            Err(BudgetError::TooManyNodes { .. })
        ));
    }

    #[test]
    fn deep_nesting_stops_at_the_limit_at_once() {
        let deep = format!("x: {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
        let start = std::time::Instant::now();
        // Flow collections reach the scanner's own limit (256 levels) before the parser's
        // events reach ours; block collections reach ours.
        let e = check(&deep).unwrap_err();
        assert!(e.to_string().contains("recursion limit"), "{e}");
        let mut block = String::new();
        for i in 0..150 {
            block += &format!("{}k:\n", "  ".repeat(i));
        }
        block += &format!("{}end: 1\n", "  ".repeat(150));
        assert!(
            matches!(check(&block), Err(BudgetError::TooDeep { limit: 100, .. })),
            "{:?}",
            check(&block)
        );
        // Linear, and stopped early: not the tens of seconds a full parse takes.
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        check(&format!("x: {}{}\n", "[".repeat(90), "]".repeat(90))).unwrap();
    }

    #[test]
    fn the_node_budget_is_exact() {
        // A mapping with two scalar pairs: 1 + 4 nodes.
        check_with("a: 1\nb: 2\n", 5, 10).unwrap();
        assert!(check_with("a: 1\nb: 2\n", 4, 10).is_err());
    }
}
