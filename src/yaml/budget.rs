//! What building values from YAML may cost octostage: a budget of nodes and bytes of text,
//! charged while the values are built, what an alias copies charged again at every use.
//!
//! The parser's own limits count what it reads; an alias is one event there, however much it
//! copies. A 50 KB file with one anchored list used ten thousand times builds a hundred
//! million values, and an anchored 10 KB string used 200,000 times 2 GB of text. So the
//! values are built through [`Build`], which charges every node and every byte of text it
//! builds and stops at the first one past what is left: what is built never exceeds the
//! budget, whatever the aliases copy.

use std::cell::Cell;

use serde::de::{DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess};
use serde_json::Value;

/// Most nodes (scalars, sequences, mappings; what an alias copies counted again) of one
/// staging's render. Five hundred objects of two hundred nodes each are 40% of it; parsed, it
/// takes about 100 MB.
pub const MAX_NODES: u64 = 250_000;
/// Most bytes of keys and strings, what an alias copies counted again: the default
/// `render_output_limit`.
pub const MAX_TEXT: u64 = 32 << 20;

/// What is left of a budget shared by the texts of one render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// A budget being spent, and whether a node was refused for it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Charge {
    pub(super) left: Budget,
    pub(super) over: bool,
}

thread_local! {
    /// The charge of the documents being read on this thread by [`Counted`]: serde-saphyr reads
    /// a stream of documents only into a type, not through a seed.
    static CHARGE: Cell<Option<Charge>> = const { Cell::new(None) };
}

/// Run `read` with `charge` as the budget of every [`Counted`] it reads on this thread; the
/// charge as `read` left it.
pub(super) fn counting<R>(charge: Charge, read: impl FnOnce() -> R) -> (R, Charge) {
    let before = CHARGE.replace(Some(charge));
    let out = read();
    let after = CHARGE.replace(before).unwrap_or(Charge {
        left: Budget { nodes: 0, text: 0 },
        over: true,
    });
    (out, after)
}

/// One document's value, built within the budget of [`counting`] (none outside it).
pub(super) struct Counted(pub(super) Value);

impl<'de> serde::Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut charge = CHARGE.take().unwrap_or(Charge {
            left: Budget { nodes: 0, text: 0 },
            over: false,
        });
        let built = Build {
            left: &mut charge.left,
            over: &mut charge.over,
        }
        .deserialize(d);
        CHARGE.set(Some(charge));
        built.map(Counted)
    }
}

/// Stack one level of nesting may take, the parser's frames and the visitor's: measured at
/// 2-4 KB in a release build and 16-32 KB in a debug one.
const PER_LEVEL: usize = if cfg!(debug_assertions) {
    48 << 10
} else {
    8 << 10
};

/// Run the whole read of `text` with the stack its nesting may need, on a fresh 16 MiB
/// segment when the thread has less left: the parser recurses within one level of values too
/// (a key that is itself nested brackets), which the per-level check below does not see.
/// Each level needs a `[`, `{`, `-`, `?` or a line of its own, so counting those bounds the
/// depth; a small file (a dir target's record) then reads on the thread's own stack, where a
/// fresh segment costs about 12 µs a read.
pub(super) fn on_a_large_stack<R>(text: &str, f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(stack_needed(text), 16 << 20, f)
}

/// The stack reading `text` may need: [`PER_LEVEL`] for every level it can open, up to what
/// the parser's limits let through, and a few levels more for the frames around them.
pub(super) fn stack_needed(text: &str) -> usize {
    let levels = text
        .bytes()
        .filter(|b| b"[{-?\n".contains(b))
        .count()
        .min(2 * super::MAX_DEPTH + 2);
    (levels + 8) * PER_LEVEL
}

/// Run one level deeper in the stack, on a fresh segment when little is left: every level of
/// nesting takes a few kilobytes of the parser's and this visitor's frames (tens in a debug
/// build), and text reaches [`super::MAX_DEPTH`] levels on any thread, a 2 MiB one included.
fn deeper<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(128 << 10, 1 << 20, f)
}

/// Builds one node's value, charging it to `left`.
pub(super) struct Build<'a> {
    pub(super) left: &'a mut Budget,
    pub(super) over: &'a mut bool,
}

impl Build<'_> {
    fn again(&mut self) -> Build<'_> {
        Build {
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

impl<'de> DeserializeSeed<'de> for Build<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Build<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML")
    }
    fn visit_bool<E: serde::de::Error>(mut self, v: bool) -> Result<Value, E> {
        self.take(0)?;
        Ok(v.into())
    }
    fn visit_i64<E: serde::de::Error>(mut self, v: i64) -> Result<Value, E> {
        self.take(0)?;
        Ok(v.into())
    }
    fn visit_u64<E: serde::de::Error>(mut self, v: u64) -> Result<Value, E> {
        self.take(0)?;
        Ok(v.into())
    }
    fn visit_f64<E: serde::de::Error>(mut self, v: f64) -> Result<Value, E> {
        self.take(0)?;
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E: serde::de::Error>(mut self, v: &str) -> Result<Value, E> {
        self.take(v.len())?;
        Ok(v.into())
    }
    fn visit_string<E: serde::de::Error>(mut self, v: String) -> Result<Value, E> {
        self.take(v.len())?;
        Ok(v.into())
    }
    fn visit_unit<E: serde::de::Error>(mut self) -> Result<Value, E> {
        self.take(0)?;
        Ok(Value::Null)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        self.take(0)?;
        deeper(|| {
            let mut items = Vec::new();
            while let Some(v) = seq.next_element_seed(self.again())? {
                items.push(v);
            }
            Ok(Value::Array(items))
        })
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        self.take(0)?;
        deeper(|| {
            let mut out = serde_json::Map::new();
            while let Some(k) = map.next_key_seed(self.again())? {
                // JSON keys are strings: numbers and booleans as they print (`1`, `true`), as
                // the Kubernetes API's YAML decoder has them; a null or a collection is no key
                // there either.
                let k = match k {
                    Value::String(s) => s,
                    Value::Number(_) | Value::Bool(_) => k.to_string(),
                    Value::Null | Value::Array(_) | Value::Object(_) => {
                        return Err(serde::de::Error::custom(
                            "a mapping key must be a string, a number or a boolean",
                        ))
                    }
                };
                let v = map.next_value_seed(self.again())?;
                out.insert(k, v);
            }
            Ok(Value::Object(out))
        })
    }
    // A node with a tag serde-saphyr does not resolve (`!foo value`): its value.
    fn visit_enum<A: EnumAccess<'de>>(mut self, data: A) -> Result<Value, A::Error> {
        let (_, variant) = data.variant_seed(self.again())?;
        variant.newtype_variant_seed(self)
    }
}
