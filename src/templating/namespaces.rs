//! minijinja's `namespace()` objects, tracked per render so that a template cannot leak memory
//! with them.
//!
//! A namespace is the one mutable value of minijinja: `{% set n.me = n %}` (or `[n]`, or a
//! second namespace pointing back) makes a cycle of reference counts that outlives the render.
//! A controller renders for months, so every namespace a render creates is remembered here and,
//! when the render ends however it ends, each attribute that holds more than a plain value is
//! set to `none`. Every cycle passes through such an attribute: `namespace(defaults)` can only
//! point at values older than itself, so only `set n.attr` can close a cycle, and its attribute
//! is an identifier a template can name.

use std::cell::RefCell;
use std::collections::BTreeMap;

use minijinja::value::ValueKind;
use minijinja::{Environment, Error, Value};

thread_local! {
    /// The namespaces created by the renders running on this thread, innermost last.
    static CREATED: RefCell<Vec<Vec<Value>>> = const { RefCell::new(Vec::new()) };
}

/// minijinja's `namespace()`, remembered for [`Tracking`] to break its cycles.
pub fn namespace(defaults: Option<Value>) -> Result<Value, Error> {
    let ns = minijinja::functions::namespace(defaults)?;
    CREATED.with(|c| {
        if let Some(current) = c.borrow_mut().last_mut() {
            current.push(ns.clone());
        }
    });
    Ok(ns)
}

/// Held for the length of one render; when dropped (the render done, failed or unwound), the
/// namespaces it created let go of everything but plain values.
pub struct Tracking(());

impl Tracking {
    pub fn start() -> Tracking {
        CREATED.with(|c| c.borrow_mut().push(Vec::new()));
        Tracking(())
    }
}

impl Drop for Tracking {
    fn drop(&mut self) {
        let created = CREATED.with(|c| c.borrow_mut().pop()).unwrap_or_default();
        if !created.is_empty() {
            break_cycles(&created);
        }
    }
}

/// Set every attribute of `created` that holds a container or object to `none`, through the
/// template statement minijinja offers for it (its namespace type is not public).
fn break_cycles(created: &[Value]) {
    let mut by_key: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for ns in created {
        let Ok(keys) = ns.try_iter() else { continue };
        for key in keys {
            let Some(name) = key.as_str().filter(|k| is_identifier(k)) else {
                continue;
            };
            let held = ns.get_attr(name).unwrap_or_default();
            if !matches!(
                held.kind(),
                ValueKind::Undefined
                    | ValueKind::None
                    | ValueKind::Bool
                    | ValueKind::Number
                    | ValueKind::String
                    | ValueKind::Bytes
            ) {
                by_key.entry(name.to_string()).or_default().push(ns.clone());
            }
        }
    }
    if by_key.is_empty() {
        return;
    }
    // No fuel here: the render that made these namespaces already paid for each of them.
    let env = Environment::new();
    for (key, namespaces) in by_key {
        let text = format!("{{% for n in nss %}}{{% set n.{key} = none %}}{{% endfor %}}");
        // A keyword (`for`) cannot follow `set n.` either, so it came from `namespace(defaults)`
        // and closes no cycle.
        let Ok(t) = env.template_from_str(&text) else {
            continue;
        };
        if let Err(e) = t.render(minijinja::context! { nss => namespaces }) {
            tracing::warn!(attribute = %key, error = %e, "could not release a template namespace");
        }
    }
}

/// A name minijinja reads as an attribute (its identifiers are ASCII), so never template code.
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Weak};

    /// Weak handles to what a namespace holds, to see whether it was freed.
    #[derive(Debug)]
    struct Probe;
    impl minijinja::value::Object for Probe {}

    fn render_with_probe(src: &str) -> (Result<String, Error>, Weak<Probe>) {
        let probe = Arc::new(Probe);
        let weak = Arc::downgrade(&probe);
        let set = {
            let mut s = crate::templating::TemplateSet::default();
            let p = s.add_dir("t", vec![("t/a".into(), src.into())]);
            assert!(p.is_empty(), "{src}: {p:?}");
            s
        };
        let ctx = minijinja::context! { probe => Value::from_dyn_object(probe) };
        let out = set.render_file("t/a", &ctx, "ns1");
        (out, weak)
    }

    #[test]
    fn a_namespace_that_holds_itself_is_freed_when_the_render_ends() {
        for src in [
            "{% set n = namespace() %}{% set n.p = probe %}{% set n.me = n %}ok",
            "{% set n = namespace() %}{% set n.p = probe %}{% set n.l = [1, n] %}ok",
            "{% set a = namespace() %}{% set b = namespace(a=a, p=probe) %}{% set a.b = b %}ok",
            "{% set n = namespace(p=probe) %}{% set n.d = {'x': [n]} %}ok",
            "{% set n = namespace(p=probe) %}{% macro m() %}{{ n.p }}{% endmacro %}{% set n.m = m %}ok",
            "{% set n = namespace(p=probe) %}{% for i in [1] %}{% set n.l = loop %}{% endfor %}ok",
            "{% set n = namespace(p=probe) %}{% set n.f = n.p %}{% set n._k2 = n %}ok",
            "{% set n = namespace(p=probe) %}{% set n.true = n %}{% set n.none = n %}{% set n.nss = n %}{% set n.loop = n %}ok",
            "{% set n = namespace({'for': [1], 'a b': [2]}) %}{% set n.p = probe %}{% set n.me = n %}ok",
            // reached through the `namespace` global, not the context's callable name
            "{% macro m() %}{% set n = namespace(p=probe) %}{% set n.me = n %}{% endmacro %}{{ m() }}",
            // an error or a lack of fuel ends the render half-way
            "{% set n = namespace() %}{% set n.p = probe %}{% set n.me = n %}{{ n.nope.x }}",
            "{% set n = namespace() %}{% set n.p = probe %}{% set n.me = n %}{% for i in range(100000000) %}{% endfor %}",
        ] {
            let (_, weak) = render_with_probe(src);
            assert!(weak.upgrade().is_none(), "still held after rendering {src}");
        }
    }

    #[test]
    fn inline_templates_free_their_namespaces_too() {
        let text = "{% set n = namespace(p=probe) %}{% set n.me = n %}x";
        for compiled in [true, false] {
            let probe = Arc::new(Probe);
            let weak = Arc::downgrade(&probe);
            let mut set = crate::templating::TemplateSet::default();
            if compiled {
                set.add_inline(text, None).unwrap();
            }
            let ctx = minijinja::context! { probe => Value::from_dyn_object(probe) };
            assert_eq!(set.render_str(text, &ctx).unwrap(), "x");
            drop(ctx);
            assert!(weak.upgrade().is_none(), "compiled: {compiled}");
        }
    }

    #[test]
    fn namespaces_still_work_and_plain_values_stay() {
        let (out, _) = render_with_probe(
            "{% set n = namespace(c=0) %}{% for i in range(3) %}{% set n.c = n.c + i %}{% endfor %}{{ n.c }}",
        );
        assert_eq!(out.unwrap(), "3");
    }
}
