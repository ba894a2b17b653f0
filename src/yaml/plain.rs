//! Whether YAML is written plainly: no anchor, alias, tag or merge key, the YAML features where
//! what octostage reads and what another reader (kubectl, kustomize) applies can differ.

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, ScanError};

/// Most bytes of a text checked (a kustomization is a few hundred).
pub const MAX_PLAIN: usize = 1 << 20;

/// What a text uses that is not plain YAML; reads after "uses".
#[derive(Debug, thiserror::Error)]
pub enum NotPlain {
    /// Longer than [`MAX_PLAIN`].
    #[error("more than {MAX_PLAIN} bytes")]
    Large,
    /// Not YAML.
    #[error("YAML it cannot read ({0})")]
    Unreadable(#[source] ScanError),
    /// `*name`, at a line.
    #[error("an alias (`*name`) at line {0}")]
    Alias(usize),
    /// `<<:`, at a line.
    #[error("a merge key (`<<:`) at line {0}")]
    Merge(usize),
    /// `&name`, at a line.
    #[error("an anchor (`&name`) at line {0}")]
    Anchor(usize),
    /// `!name`, at a line.
    #[error("a tag (`!name`) at line {0}")]
    Tag(usize),
}

/// Whether `text` is YAML written plainly; else what it uses first. Events are read one by
/// one and nothing is built: linear in the text.
pub fn plain(text: &str) -> Result<(), NotPlain> {
    if text.len() > MAX_PLAIN {
        return Err(NotPlain::Large);
    }
    let mut parser = Parser::new_from_str(text);
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(NotPlain::Unreadable)?;
        let at = span.start.line();
        let (anchor, tag) = match &event {
            Event::Alias(_) => return Err(NotPlain::Alias(at)),
            Event::Scalar(v, ScalarStyle::Plain, ..) if v == "<<" => {
                return Err(NotPlain::Merge(at))
            }
            Event::Scalar(_, _, anchor, tag)
            | Event::MappingStart(_, anchor, tag)
            | Event::SequenceStart(_, anchor, tag) => (*anchor, tag.is_some()),
            _ => continue,
        };
        if anchor > 0 {
            return Err(NotPlain::Anchor(at));
        }
        if tag {
            return Err(NotPlain::Tag(at));
        }
    }
    Ok(())
}
