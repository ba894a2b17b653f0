//! Template directories compiled once per configuration, and the minijinja environment that
//! renders them and every string template (namespace, values, links, command arguments).

use std::collections::BTreeMap;
use std::fmt;

use minijinja::{Environment, UndefinedBehavior};

/// Every template file of a configuration, compiled.
pub struct TemplateSet {
    env: Environment<'static>,
    dirs: BTreeMap<String, Vec<String>>,
}

impl Default for TemplateSet {
    fn default() -> Self {
        TemplateSet {
            env: environment(),
            dirs: BTreeMap::new(),
        }
    }
}

impl fmt::Debug for TemplateSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemplateSet")
            .field("dirs", &self.dirs)
            .finish()
    }
}

/// The minijinja environment every template renders in: undefined values are errors (a typo in
/// `values.imge` must not become an empty image name), plus a `slug` filter.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    // With the `json` feature minijinja would JSON-escape output of `*.yaml` templates; templates
    // here quote explicitly, as Helm charts do, and use `tojson` where they need to.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_filter("slug", |s: String| crate::naming::slug(&s));
    env
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
        let mut problems = Vec::new();
        let mut names = Vec::new();
        for (name, source) in files {
            match self.env.add_template_owned(name.clone(), source) {
                Ok(()) => names.push(name),
                Err(e) => problems.push((
                    name,
                    e.line().unwrap_or(1),
                    format!("template syntax: {}", e.detail().unwrap_or("invalid")),
                )),
            }
        }
        self.dirs.insert(dir.to_string(), names);
        problems
    }

    /// Render every file of `dir` with `ctx`: (file name, output).
    pub fn render_dir(
        &self,
        dir: &str,
        ctx: &minijinja::Value,
    ) -> Result<Vec<(String, String)>, super::RenderError> {
        let names = self
            .dirs
            .get(dir)
            .ok_or_else(|| super::RenderError::Template {
                file: dir.to_string(),
                line: 0,
                message: "templates directory was not loaded with the configuration".into(),
            })?;
        names
            .iter()
            .map(|name| {
                let t = self
                    .env
                    .get_template(name)
                    .map_err(|e| super::RenderError::from_minijinja(name, &e))?;
                let out = t
                    .render(ctx)
                    .map_err(|e| super::RenderError::from_minijinja(name, &e))?;
                Ok((name.clone(), out))
            })
            .collect()
    }

    /// Compile a string template (namespace, value, link, argument) once, so rendering it for
    /// thousands of stagings does not parse it each time. Returns the compile error, if any.
    pub fn add_inline(&mut self, text: &str) -> Result<(), String> {
        if !is_template(text) || self.env.get_template(&inline_name(text)).is_ok() {
            return Ok(());
        }
        self.env
            .add_template_owned(inline_name(text), text.to_string())
            .map_err(|e| e.detail().unwrap_or("invalid template").to_string())
    }

    /// Render one string template with `ctx`.
    pub fn render_str(
        &self,
        text: &str,
        ctx: &minijinja::Value,
    ) -> Result<String, minijinja::Error> {
        if !is_template(text) {
            return Ok(text.to_string());
        }
        match self.env.get_template(&inline_name(text)) {
            Ok(t) => t.render(ctx),
            Err(_) => self.env.render_str(text, ctx),
        }
    }
}

fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%")
}

/// Inline templates live beside the files under a name no file can have.
fn inline_name(text: &str) -> String {
    format!("<inline>{text}")
}
