//! A bound on what parsing YAML may cost octostage, checked before the text is parsed into
//! values.
//!
//! Text from a branch reaches serde_yaml in octostage's own process (what a render printed, a
//! kustomization's `resources`), where no process limit applies. serde_yaml stops the classic
//! nested alias bomb, but counts alias uses, not what they copy: a 50 KB file with one anchored
//! list used ten thousand times expands to a hundred million values, and an anchored 10 KB
//! string used 200,000 times to 2 GB. So every such text is first walked twice, each time in
//! memory proportional to the text and never to what aliases copy:
//!
//! 1. its punctuation and line breaks are counted: serde_yaml reads a whole document's events
//!    before it builds a value, about a hundred bytes each, and a document cannot have more
//!    events than twice these characters (30 MB of `[],` would be 3 GB of events);
//! 2. serde_yaml itself walks it with a visitor that builds nothing and counts every node and
//!    every byte of text, what an alias copies counted again each time, stopping at the first
//!    node past the budget. The walk is serde_yaml's own, so an alias resolves exactly as it
//!    will when the text is parsed (a second parser read anchors differently).
//!
//! Flow collections (`[`, `{`) cost libyaml time for every open level at every token: 200 KB
//! of nested brackets took 20 s before its recursion limit (128 levels) said no. Brackets are
//! counted first, ignoring quotes, and more than 128 open at once is refused at once (a text
//! with that many unclosed brackets inside its strings is refused with it).

use serde::de::{DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess};

/// Most nodes (scalars, sequences, mappings; what an alias copies counted again) of one
/// staging's render. Five hundred objects of two hundred nodes each are 40% of it; parsed, it
/// takes about 100 MB.
pub const MAX_NODES: u64 = 250_000;
/// Most bytes of keys and strings, what an alias copies counted again: the default
/// `render_output_limit`.
pub const MAX_TEXT: u64 = 32 << 20;
/// Most punctuation characters and line breaks of one text (see the module's first point):
/// a few megabytes of manifests, JSON dashboards in strings included, have a few hundred
/// thousand.
pub const MAX_PUNCTUATION: u64 = 1_000_000;
/// Most brackets open at once: serde_yaml's recursion limit.
pub const MAX_FLOW_DEPTH: usize = 128;

/// What is left of a budget shared by the texts of one render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Budget {
    /// Nodes left.
    pub nodes: u64,
    /// Bytes of text left.
    pub text: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            nodes: MAX_NODES,
            text: MAX_TEXT,
        }
    }
}

/// Why a text is refused before it is parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// Past the budget of nodes or text.
    #[error("it expands to more than {MAX_NODES} YAML nodes or {} MiB of text for one staging (aliases counted with what they copy): a file built to expand (an alias bomb), or far more than a staging holds", MAX_TEXT >> 20)]
    TooLarge,
    /// Too much punctuation to read the text's events in bounded memory.
    #[error("it has more than {MAX_PUNCTUATION} YAML punctuation characters and line breaks; a file built to be expensive to parse, or far more than a staging holds")]
    TooMuchPunctuation,
    /// Flow collections nested past serde_yaml's recursion limit.
    #[error("it opens more than {MAX_FLOW_DEPTH} brackets (`[`, `{{`) at once; YAML nested this deep is refused")]
    TooDeep,
    /// Not YAML (the parse that follows says where).
    #[error("{0}")]
    Syntax(String),
}

/// Check `text` against a fresh budget.
pub fn check(text: &str) -> Result<(), BudgetError> {
    charge(text, &mut Budget::default())
}

/// Check `text` within what is `left` of a budget shared by several texts (one staging's
/// render), and take what it used from it.
pub fn charge(text: &str, left: &mut Budget) -> Result<(), BudgetError> {
    let (mut punctuation, mut depth) = (0u64, 0usize);
    for b in text.bytes() {
        if b"[]{},:-?&*!|>'\"\n#%".contains(&b) {
            punctuation += 1;
        }
        match b {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_FLOW_DEPTH {
            return Err(BudgetError::TooDeep);
        }
    }
    if punctuation > MAX_PUNCTUATION {
        return Err(BudgetError::TooMuchPunctuation);
    }
    for doc in serde_yaml::Deserializer::from_str(text) {
        let mut over = false;
        let r = Count {
            left: &mut *left,
            over: &mut over,
        }
        .deserialize(doc);
        match r {
            Ok(()) => {}
            Err(_) if over => return Err(BudgetError::TooLarge),
            Err(e) => return Err(BudgetError::Syntax(e.to_string())),
        }
    }
    Ok(())
}

/// Walks one node, building nothing, charging it to `left`.
struct Count<'a> {
    left: &'a mut Budget,
    over: &'a mut bool,
}

impl Count<'_> {
    fn again(&mut self) -> Count<'_> {
        Count {
            left: &mut *self.left,
            over: &mut *self.over,
        }
    }

    fn take<E: serde::de::Error>(&mut self, text: usize) -> Result<(), E> {
        let text = text as u64;
        if self.left.nodes == 0 || self.left.text < text {
            *self.over = true;
            return Err(E::custom("over the YAML budget"));
        }
        self.left.nodes -= 1;
        self.left.text -= text;
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Count<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML")
    }
    fn visit_bool<E: serde::de::Error>(mut self, _: bool) -> Result<(), E> {
        self.take(0)
    }
    fn visit_i64<E: serde::de::Error>(mut self, _: i64) -> Result<(), E> {
        self.take(0)
    }
    fn visit_u64<E: serde::de::Error>(mut self, _: u64) -> Result<(), E> {
        self.take(0)
    }
    fn visit_f64<E: serde::de::Error>(mut self, _: f64) -> Result<(), E> {
        self.take(0)
    }
    fn visit_str<E: serde::de::Error>(mut self, s: &str) -> Result<(), E> {
        self.take(s.len())
    }
    fn visit_bytes<E: serde::de::Error>(mut self, b: &[u8]) -> Result<(), E> {
        self.take(b.len())
    }
    fn visit_unit<E: serde::de::Error>(mut self) -> Result<(), E> {
        self.take(0)
    }
    fn visit_none<E: serde::de::Error>(mut self) -> Result<(), E> {
        self.take(0)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.take(0)?;
        while seq.next_element_seed(self.again())?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.take(0)?;
        while map.next_key_seed(self.again())?.is_some() {
            map.next_value_seed(self.again())?;
        }
        Ok(())
    }
    // A tagged node (`!foo value`): its tag, then its value.
    fn visit_enum<A: EnumAccess<'de>>(mut self, data: A) -> Result<(), A::Error> {
        let ((), variant) = data.variant_seed(self.again())?;
        variant.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_yaml_passes_and_aliases_are_charged_what_they_copy() {
        check("a: 1\nb: [1, 2, {c: d}]\n---\nx: &x {y: !tag 1}\nz: *x\n").unwrap();
        // One list of 1,000 items used 1,000 times: a million values from 10 KB.
        let items = vec!["1"; 1000].join(",");
        let uses = vec!["*a"; 1000].join(",");
        let flat = format!("x: &a [{items}]\ny: [{uses}]\n");
        assert!(flat.len() < 12_000);
        assert_eq!(check(&flat), Err(BudgetError::TooLarge));
        // A 10 KB string used 10,000 times: 100 MB of text from 60 KB.
        let big = format!(
            "a: &a \"{}\"\nb: [{}]\n",
            "x".repeat(10_000),
            vec!["*a"; 10_000].join(",")
        );
        assert_eq!(check(&big), Err(BudgetError::TooLarge));
        // A redefined anchor resolves as serde_yaml resolves it, and is charged so.
        let redefined = format!(
            "x1: &a s\nx2: &b s\nx3: &a s\nbig: &c [{items}]\nitems: [{}]\n",
            vec!["*a"; 1000].join(",")
        );
        assert_eq!(check(&redefined), Err(BudgetError::TooLarge));
    }

    #[test]
    fn the_budget_is_shared_and_exact() {
        let mut left = Budget {
            nodes: 5,
            text: 100,
        };
        // A mapping with two scalar pairs: 1 + 4 nodes.
        charge("a: 1\nb: 2\n", &mut left).unwrap();
        assert_eq!(left.nodes, 0);
        assert_eq!(charge("a", &mut left), Err(BudgetError::TooLarge));
    }

    #[test]
    fn what_kubectl_accepts_passes_and_punctuation_is_bounded() {
        // Flow collections closed at the key's indent, tabs after a colon: libyaml reads them.
        check("command: [\n  \"sh\", \"-c\", \"echo hi\"\n]\nlabels: {\n    \"x\": \"y\"\n  }\na:\tb\n")
            .unwrap();
        let start = std::time::Instant::now();
        assert_eq!(
            check(&"[],".repeat(1_000_000)),
            Err(BudgetError::TooMuchPunctuation)
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        let deep = format!("x: {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
        let start = std::time::Instant::now();
        assert_eq!(check(&deep), Err(BudgetError::TooDeep));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        check(&format!("x: {}{}\n", "[".repeat(100), "]".repeat(100))).unwrap();
    }
}
