//! Templates: every template file of a configuration compiled once, and the minijinja
//! environment that renders them and every string template (namespace, values, links, command
//! arguments). Below both the configuration (which compiles them when it validates) and
//! rendering (which runs them).
//!
//! Templates are bounded: every render has [`consts::TEMPLATE_FUEL`] instructions (a runaway
//! loop stops with an error instead of holding a pass) and the caller caps what they produce.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use minijinja::value::{from_args, Kwargs, Object, ObjectRepr, StringInput};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior, Value};

use crate::consts;

mod namespaces;

/// Where an inline template (a namespace, value, link or argument) is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file.
    pub file: String,
    /// Line where its value starts, from 1.
    pub line: usize,
    /// Column where its value starts, from 1.
    pub column: usize,
}

/// Every template file of a configuration, compiled.
pub struct TemplateSet {
    env: Environment<'static>,
    dirs: BTreeMap<String, Vec<String>>,
    /// Templates that call minijinja's `namespace()`, which the context variable `namespace`
    /// would otherwise hide.
    calls_namespace: HashSet<String>,
    origins: HashMap<String, Origin>,
    /// Per directory, a digest of its files' names and contents.
    digests: BTreeMap<String, String>,
}

impl Default for TemplateSet {
    fn default() -> Self {
        TemplateSet {
            env: environment(),
            dirs: BTreeMap::new(),
            calls_namespace: HashSet::new(),
            origins: HashMap::new(),
            digests: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for TemplateSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemplateSet")
            .field("dirs", &self.dirs)
            .field("digests", &self.digests)
            .finish()
    }
}

/// The minijinja environment every template renders in: undefined values are errors (a typo in
/// `values.imge` must not become an empty image name), also through the filters that would turn
/// them into text (`tojson`, `join`, `escape`, `pprint`); `shell_quote` and `slug` filters; and
/// a fuel limit per render.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_fuel(Some(consts::TEMPLATE_FUEL));
    // With the `json` feature minijinja would JSON-escape output of `*.yaml` templates; templates
    // here quote explicitly, as Helm charts do, and use `tojson` where they need to.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_function("namespace", namespaces::namespace);
    env.add_filter("slug", |s: String| crate::naming::slug(&s));
    env.add_filter("dns_label", |s: String, max: Option<usize>| {
        crate::naming::fit_label(&s, max.unwrap_or(crate::consts::MAX_LABEL))
    });
    env.add_filter("shell_quote", shell_quote_filter);
    env.add_filter(
        "tojson",
        |v: Value, indent: Option<Value>, kwargs: Kwargs| {
            defined(&v, "tojson")?;
            minijinja::filters::tojson(&v, indent, kwargs)
        },
    );
    env.add_filter("join", |state: &State, v: Value, joiner: Option<Value>| {
        defined(&v, "join")?;
        let joiner = match &joiner {
            Some(j) => Some(StringInput::new(state, j)?),
            None => None,
        };
        minijinja::filters::join(state, &v, joiner)
    });
    for name in ["escape", "e"] {
        env.add_filter(name, |state: &State, v: Value| {
            defined(&v, "escape")?;
            minijinja::filters::escape(state, &v)
        });
    }
    env.add_filter("pprint", |v: Value| {
        defined(&v, "pprint")?;
        Ok::<_, Error>(minijinja::filters::pprint(&v))
    });
    env
}

fn defined(v: &Value, filter: &str) -> Result<(), Error> {
    if v.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            format!("an undefined value was passed to `{filter}`"),
        ));
    }
    Ok(())
}

/// POSIX single quoting: the value reaches the shell as one word, whatever it holds.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

fn shell_quote_filter(v: Value) -> Result<String, Error> {
    defined(&v, "shell_quote")?;
    Ok(shell_quote(&v.to_string()))
}

/// The staging's namespace as templates that also call `namespace()` see it: it prints and
/// filters like the string, and calling it is minijinja's `namespace()`.
#[derive(Debug)]
struct NamespaceName(String);

impl Object for NamespaceName {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }
    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
    fn is_true(self: &Arc<Self>) -> bool {
        !self.0.is_empty()
    }
    fn call(self: &Arc<Self>, _state: &State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let (defaults,): (Option<Value>,) = from_args(args)?;
        namespaces::namespace(defaults)
    }
    fn call_method(
        self: &Arc<Self>,
        state: &State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        Value::from(self.0.as_str()).call_method(state, method, args)
    }
}

/// Whether `text` is a template at all (plain strings render as themselves).
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

fn calls_namespace_fn(source: &str) -> bool {
    source.match_indices("namespace").any(|(i, _)| {
        let before = source[..i].chars().next_back();
        let after = source[i + "namespace".len()..].trim_start();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
            && after.starts_with('(')
    })
}

impl TemplateSet {
    /// Whether `dir` was added.
    pub fn has_dir(&self, dir: &str) -> bool {
        self.dirs.contains_key(dir)
    }

    /// Add the files of `dir`; returns (file, line, message) for each file that does not compile.
    pub fn add_dir(
        &mut self,
        dir: &str,
        files: Vec<(String, String)>,
    ) -> Vec<(String, usize, String)> {
        use sha2::{Digest, Sha256};
        let mut problems = Vec::new();
        let mut names = Vec::new();
        let mut digest = Sha256::new();
        for (name, source) in files {
            for part in [name.as_bytes(), b"\0", source.as_bytes(), b"\0"] {
                digest.update(part);
            }
            let calls = calls_namespace_fn(&source);
            match self.env.add_template_owned(name.clone(), source) {
                Ok(()) => {
                    if calls {
                        self.calls_namespace.insert(name.clone());
                    }
                    names.push(name)
                }
                Err(e) => problems.push((
                    name,
                    e.line().unwrap_or(1),
                    format!("template syntax: {}", e.detail().unwrap_or("invalid")),
                )),
            }
        }
        self.dirs.insert(dir.to_string(), names);
        self.digests
            .insert(dir.to_string(), format!("{:x}", digest.finalize()));
        problems
    }

    /// A digest of the names and contents of the files of `dir`, if it was added.
    pub fn digest(&self, dir: &str) -> Option<&str> {
        self.digests.get(dir).map(String::as_str)
    }

    /// The files of `dir`.
    pub fn files(&self, dir: &str) -> &[String] {
        self.dirs.get(dir).map(Vec::as_slice).unwrap_or_default()
    }

    /// Render one file of a templates directory with `ctx`, whose `namespace` is `namespace`.
    pub fn render_file(&self, name: &str, ctx: &Value, namespace: &str) -> Result<String, Error> {
        let t = self.env.get_template(name)?;
        let _tracking = namespaces::Tracking::start();
        if self.calls_namespace.contains(name) {
            let ns = Value::from_object(NamespaceName(namespace.to_string()));
            t.render(minijinja::context! { namespace => ns, ..ctx.clone() })
        } else {
            t.render(ctx)
        }
    }

    /// The source of a template file, for error messages.
    pub fn source(&self, name: &str) -> Option<String> {
        self.env
            .get_template(name)
            .ok()
            .map(|t| t.source().to_string())
    }

    /// Compile a string template (namespace, value, link, argument) once, so rendering it for
    /// thousands of stagings does not parse it each time, and remember where it is written.
    /// Returns the compile error, if any.
    pub fn add_inline(&mut self, text: &str, origin: Option<Origin>) -> Result<(), CompileError> {
        if !is_template(text) {
            return Ok(());
        }
        if let Some(o) = origin {
            self.origins.entry(text.to_string()).or_insert(o);
        }
        if self.env.get_template(&inline_name(text)).is_ok() {
            return Ok(());
        }
        self.env
            .add_template_owned(inline_name(text), text.to_string())
            .map_err(CompileError)
    }

    /// Where an inline template is written, when the configuration says.
    pub fn origin(&self, text: &str) -> Option<&Origin> {
        self.origins.get(text)
    }

    /// Render one string template with `ctx`.
    pub fn render_str(&self, text: &str, ctx: &Value) -> Result<String, Error> {
        if !is_template(text) {
            return Ok(text.to_string());
        }
        let _tracking = namespaces::Tracking::start();
        match self.env.get_template(&inline_name(text)) {
            Ok(t) => t.render(ctx),
            Err(_) => self.env.render_str(text, ctx),
        }
    }
}

/// Inline templates live beside the files under a name no file can have.
fn inline_name(text: &str) -> String {
    format!("<inline>{text}")
}

/// Why a template does not compile: minijinja's detail alone (where it is written is said by
/// whoever shows it).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.detail().unwrap_or("invalid template"))]
pub struct CompileError(pub minijinja::Error);

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    fn render(src: &str) -> Result<String, Error> {
        let mut t = TemplateSet::default();
        assert!(t
            .add_dir("t", vec![("t/a.yaml".into(), src.into())])
            .is_empty());
        let ctx = context! { values => context! { image => "x" }, namespace => "ns1" };
        t.render_file("t/a.yaml", &ctx, "ns1")
    }

    #[test]
    fn undefined_stays_an_error_through_every_filter_but_default() {
        let filters = [
            "tojson",
            "upper",
            "lower",
            "string",
            "trim",
            "length",
            "list",
            "first",
            "last",
            "join",
            "replace('a','b')",
            "title",
            "capitalize",
            "int",
            "float",
            "bool",
            "abs",
            "escape",
            "e",
            "safe",
            "items",
            "lines",
            "reverse",
            "sort",
            "unique",
            "indent(2)",
            "pprint",
            "count",
            "min",
            "max",
            "sum",
            "batch(2)",
            "slice(2)",
            "map('upper')",
            "select",
            "reject",
            "attr('x')",
            "dictsort",
            "round",
            "split",
            "shell_quote",
            "slug",
        ];
        for f in filters {
            let r = render(&format!("{{{{ values.typo | {f} }}}}"));
            assert!(r.is_err(), "`values.typo | {f}` rendered {r:?}");
        }
        assert_eq!(render("{{ values.typo | default('d') }}").unwrap(), "d");
        assert_eq!(render("{{ values.image | tojson }}").unwrap(), "\"x\"");
    }

    #[test]
    fn the_namespace_builtin_stays_usable_beside_the_namespace_variable() {
        let out = render(
            "{% set n = namespace(count=0) %}{% for i in [1, 2] %}{% set n.count = n.count + i %}{% endfor %}{{ n.count }} {{ namespace }} {{ namespace | upper }} {{ 'a-' ~ namespace }}",
        )
        .unwrap();
        assert_eq!(out, "3 ns1 NS1 a-ns1");
        // Templates that do not call namespace() see the plain string.
        assert_eq!(
            render("{{ namespace }}-{{ namespace == 'ns1' }}").unwrap(),
            "ns1-True"
        );
        // Those that do compare it through `string`.
        assert_eq!(
            render("{% set n = namespace() %}{{ namespace | string == 'ns1' }}").unwrap(),
            "True"
        );
    }

    #[test]
    fn runaway_loops_run_out_of_fuel() {
        let start = std::time::Instant::now();
        let e = render(
            "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}",
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutOfFuel);
        assert!(start.elapsed() < std::time::Duration::from_secs(30));
    }

    #[test]
    fn shell_quote_makes_one_word_of_anything() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's $(x)"), "'it'\"'\"'s $(x)'");
        assert_eq!(render("{{ 'x;y' | shell_quote }}").unwrap(), "'x;y'");
    }
}
