//! Every YAML octostage reads and writes, through serde-saphyr: environments.yaml, what a
//! render prints, a kustomization, the dir target's files.
//!
//! Text from a branch is parsed in octostage's own process, where no process limit applies, so
//! every read is bounded while it happens, not by a count made before:
//! - the parser's own limits: nesting (flow and block) at [`MAX_DEPTH`], documents, events,
//!   anchors and what it keeps of them to replay aliases;
//! - values are built within a [`Budget`] of nodes and bytes, what an alias copies charged at
//!   every use (see [`budget`]).
//!
//! The parser streams events and is linear in its input: the attacks that took serde_yaml
//! seconds to minutes (brackets hidden in strings, a 1 MB number read again at each of 20,000
//! aliases) are refused in milliseconds here, so no child process parses for octostage.
//! Values read as they did with serde_yaml: booleans are YAML 1.2's (`yes` is a string), and so
//! are numbers (`010` and `1_000` are strings); `<<` is an ordinary key (following merges made
//! the parser copy nested merge values at every level).

mod budget;
mod plain;
mod positions;

pub use budget::{Budget, MAX_NODES, MAX_TEXT};
pub use plain::{plain, NotPlain, MAX_PLAIN};
pub use positions::{escape, Duplicate, Pos, Positions};

use budget::{Build, Charge, Counted};
use serde::de::DeserializeSeed;
use serde_json::Value;
use serde_saphyr::options::{DuplicateKeyPolicy, MergeKeyPolicy};

/// Deepest nesting of collections, flow (`[`, `{`) or block: far past any manifest, and
/// the Kubernetes API's own JSON limit is in the same range.
pub const MAX_DEPTH: usize = 128;

/// Why YAML was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    /// Not YAML, or YAML these values cannot be (a key given twice where that is refused).
    #[error("{message}")]
    Syntax {
        /// What the parser said, with its line and column.
        message: String,
        /// Where, when the parser knows.
        pos: Option<Pos>,
    },
    /// Past the budget of nodes or text.
    #[error("it expands to more than {MAX_NODES} YAML nodes or {} MiB of text for one staging (aliases counted with what they copy): a file built to expand (an alias bomb), or far more than a staging holds", MAX_TEXT >> 20)]
    TooLarge,
    /// Nested past [`MAX_DEPTH`].
    #[error("it nests more than {MAX_DEPTH} levels (brackets `[`, `{{` or indented blocks); YAML nested this deep is refused")]
    TooDeep,
}

impl YamlError {
    /// Where the parser stopped, when it says.
    pub fn pos(&self) -> Option<Pos> {
        match self {
            YamlError::Syntax { pos, .. } => *pos,
            _ => None,
        }
    }

    /// Whether the text was refused for what it would cost, not for what it says.
    pub fn is_budget(&self) -> bool {
        !matches!(self, YamlError::Syntax { .. })
    }
}

/// Why a value could not be written as YAML.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WriteError(#[from] serde_saphyr::SerializeError);

/// The non-empty documents of `text` (what a render printed), built within what is `left` of a
/// budget shared by the texts of one render. A key given twice in one mapping is an error, as
/// the Kubernetes API's strict decoding has it.
pub fn documents(text: &str, left: &mut Budget) -> Result<Vec<Value>, YamlError> {
    let text = crate::text::strip_bom(text);
    let options = options(left, DuplicateKeyPolicy::Error);
    let charge = Charge {
        left: *left,
        over: false,
    };
    let (read, charge) = budget::counting(charge, || {
        budget::on_a_large_stack(text, || {
            serde_saphyr::from_str_multiple_with_options::<Counted, Vec<Counted>>(text, options)
        })
    });
    *left = charge.left;
    let docs = read.map_err(|e| error(&e, charge.over))?;
    Ok(docs
        .into_iter()
        .map(|d| d.0)
        .filter(|v| !v.is_null())
        .collect())
}

/// The one document of `text` (a file the user wrote: environments.yaml), within a budget of
/// its own; `null` for an empty text. A key given twice keeps its last value: [`Positions`]
/// finds it with both places, for a message that names them.
pub fn document(text: &str) -> Result<Value, YamlError> {
    let text = crate::text::strip_bom(text);
    let mut left = Budget::default();
    let mut over = false;
    // Entries reach the visitor as written, which keeps the last: the parser's own last-wins
    // buffers a mapping's entries.
    let options = options(&left, DuplicateKeyPolicy::PassThrough);
    budget::on_a_large_stack(text, || {
        serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
            Build {
                left: &mut left,
                over: &mut over,
            }
            .deserialize(de)
        })
    })
    .map_err(|e| error(&e, over))
}

/// A value of type `T` from `text`, which octostage wrote itself (a dir target's record),
/// within the default budget's parser limits.
pub fn from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let options = options(&Budget::default(), DuplicateKeyPolicy::Error);
    budget::on_a_large_stack(text, || serde_saphyr::from_str_with_options(text, options))
        .map_err(|e| error(&e, false))
}

/// `value` as a YAML document.
pub fn to_string(value: &impl serde::Serialize) -> Result<String, WriteError> {
    Ok(serde_saphyr::to_string(value)?)
}

/// The parser's limits for what is `left`: no more nodes or text than the budget builds, and
/// no more kept for aliases to replay.
fn options(left: &Budget, duplicate_keys: DuplicateKeyPolicy) -> serde_saphyr::Options {
    let nodes = usize::try_from(left.nodes).unwrap_or(usize::MAX);
    let text = usize::try_from(left.text).unwrap_or(usize::MAX);
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            flow_nesting_limit: MAX_DEPTH,
            // Every node opens at most one event and closes at most one; a document is
            // two events of its own and holds a node.
            max_events: nodes.saturating_mul(4).saturating_add(16),
            max_documents: nodes.saturating_add(1),
            max_nodes: nodes.saturating_add(1),
            max_total_scalar_bytes: text.saturating_add(1),
            max_recorded_anchor_events: nodes.saturating_add(1),
            max_recorded_anchor_bytes: text.saturating_add(1),
            // What aliases copy is charged by the visitor; the heuristic refused real
            // manifests (one anchor used a hundred times).
            enforce_alias_anchor_ratio: false,
        },
        duplicate_keys: duplicate_keys,
        // `<<` is a key like any other, as serde_yaml had it: following merges made the
        // parser copy each nested merge value again, depth times the text in memory.
        merge_keys: MergeKeyPolicy::AsOrdinary,
        // As serde_yaml read them: `010` and `1_000` are strings, not 10.0 and 1000.
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        with_snippet: false,
    }
}

/// The error of `e`, read while building values (`over`: a node was refused for the budget).
fn error(e: &serde_saphyr::Error, over: bool) -> YamlError {
    use serde_saphyr::budget::BudgetBreach;
    use serde_saphyr::Error as E;
    if over {
        return YamlError::TooLarge;
    }
    let mut inner = e.without_snippet();
    while let E::AliasError { error, .. } = inner {
        inner = error.without_snippet();
    }
    match inner {
        E::Budget {
            breach: BudgetBreach::Depth { .. },
            ..
        } => YamlError::TooDeep,
        E::ExternalMessage { source, .. }
            if matches!(
                &**source,
                serde_saphyr::ExternalMessageSource::Parser(s)
                    if matches!(s.kind(), serde_saphyr::granit_parser::ErrorKind::RecursionLimitExceeded)
            ) =>
        {
            YamlError::TooDeep
        }
        E::Budget { .. }
        | E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => YamlError::TooLarge,
        E::MultipleDocuments { .. } => YamlError::Syntax {
            message: "it holds more than one YAML document (`---`); write one".into(),
            pos: position(inner),
        },
        other => YamlError::Syntax {
            message: message(other),
            pos: position(other),
        },
    }
}

/// Where the parser stopped.
fn position(e: &serde_saphyr::Error) -> Option<Pos> {
    e.location().map(|l| Pos {
        line: usize::try_from(l.line()).unwrap_or(usize::MAX),
        column: usize::try_from(l.column()).unwrap_or(usize::MAX),
    })
}

/// The parser's message, without its advice to the programmer.
fn message(e: &serde_saphyr::Error) -> String {
    let text = e.to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    match text.split_once(", set DuplicateKeyPolicy") {
        Some((head, _)) => format!("{head} (a key written twice in one mapping)"),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests;
