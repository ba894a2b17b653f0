//! Settings layers: render specs, namespaces, templates and values.

use std::path::Path;

use super::super::model::*;
use super::super::raw::*;
use super::parse_size;
use super::Validator;
use crate::config::Problem;
use crate::consts;
use crate::naming;
use crate::yaml::escape;

impl Validator<'_> {
    pub(super) fn layer(&mut self, raw: &RawSettings, ptr: &str) -> Layer {
        if let Some(ns) = &raw.namespace {
            self.namespace(ns, &format!("{ptr}/namespace"));
        }
        let render = self.render_spec(raw, ptr);
        if let Some(values) = &raw.values {
            self.template_values(
                &serde_json::Value::Object(values.clone()),
                &format!("{ptr}/values"),
            );
        }
        if let Some(links) = &raw.links {
            for (k, v) in links {
                self.template_str(v, &format!("{ptr}/links/{}", escape(k)));
            }
        }
        if let Some(names) = &raw.render_env {
            self.render_env(names, &format!("{ptr}/render_env"));
        }
        let ttl = raw.ttl.as_deref().and_then(|t| {
            if t == "never" {
                Some(Ttl::Never)
            } else {
                self.duration(t, &format!("{ptr}/ttl")).map(Ttl::After)
            }
        });
        let (render_timeout, render_output_limit, render_memory_limit) =
            self.render_limits(raw, ptr);
        Layer {
            namespace: raw.namespace.clone(),
            render,
            render_timeout,
            render_output_limit,
            render_memory_limit,
            render_env: raw.render_env.clone(),
            values: raw.values.clone(),
            links: raw.links.clone(),
            ttl,
            retention: raw
                .retention
                .as_deref()
                .and_then(|d| self.duration(d, &format!("{ptr}/retention"))),
            sleep: raw.sleep.as_ref().and_then(|s| match s {
                RawSleepSetting::Never(_) => Some(None),
                RawSleepSetting::Schedule(s) => self.sleep(s, &format!("{ptr}/sleep")).map(Some),
            }),
            max_extension: raw
                .max_extension
                .as_deref()
                .and_then(|d| self.duration(d, &format!("{ptr}/max_extension"))),
            health_deadline: raw
                .health_deadline
                .as_deref()
                .and_then(|d| self.duration(d, &format!("{ptr}/health_deadline"))),
            notify: raw
                .notify
                .as_ref()
                .and_then(|n| self.notify(n, &format!("{ptr}/notify")))
                .map(std::sync::Arc::new),
            copy: raw
                .copy
                .as_ref()
                .map(|c| self.copies(c, &format!("{ptr}/copy"))),
            wait_for: raw
                .wait_for
                .as_ref()
                .and_then(|w| self.wait_for(w, &format!("{ptr}/wait_for"))),
            app_paths: raw.app_paths.as_ref().map(|paths| {
                for (i, p) in paths.iter().enumerate() {
                    if let Err(e) = crate::source::check_app_path(p) {
                        self.err(&format!("{ptr}/app_paths/{i}"), e.to_string());
                    }
                }
                paths.clone()
            }),
        }
    }

    /// `render_timeout`, `render_output_limit` and `render_memory_limit` of a layer, each
    /// within its bounds.
    fn render_limits(
        &mut self,
        raw: &RawSettings,
        ptr: &str,
    ) -> (Option<std::time::Duration>, Option<u64>, Option<u64>) {
        let render_timeout = raw.render_timeout.as_deref().and_then(|d| {
            let p = format!("{ptr}/render_timeout");
            let d = self.duration(d, &p)?;
            if d.is_zero() || d > consts::MAX_RENDER_TIMEOUT {
                self.err(&p, "render_timeout must be longer than 0s and at most 1h");
                return None;
            }
            Some(d)
        });
        let render_output_limit = raw.render_output_limit.as_deref().and_then(|t| {
            let p = format!("{ptr}/render_output_limit");
            match parse_size(t) {
                Ok(n) => Some(n),
                Err(e) => {
                    self.err(&p, e.to_string());
                    None
                }
            }
        });
        let render_memory_limit = raw.render_memory_limit.as_deref().and_then(|t| {
            let p = format!("{ptr}/render_memory_limit");
            match parse_size(t) {
                Ok(n) if (consts::MIN_RENDER_MEMORY_LIMIT..=consts::MAX_RENDER_MEMORY_LIMIT).contains(&n) => Some(n),
                Ok(_) => {
                    self.err(&p, "render_memory_limit must be at least 128MiB (kubectl and helm need about that to start) and at most 64GiB");
                    None
                }
                Err(e) => {
                    self.err(&p, e.to_string());
                    None
                }
            }
        });
        (render_timeout, render_output_limit, render_memory_limit)
    }

    /// `copy` entries: one kind each, a `namespace/name` source, a name Kubernetes takes, and
    /// no name given twice per kind.
    fn copies(&mut self, raw: &[RawCopy], ptr: &str) -> Vec<Copy> {
        let mut out: Vec<Copy> = Vec::new();
        for (i, c) in raw.iter().enumerate() {
            let p = format!("{ptr}/{i}");
            let (kind, source) = match (&c.secret, &c.config_map) {
                (Some(s), None) => (CopyKind::Secret, s),
                (None, Some(s)) => (CopyKind::ConfigMap, s),
                _ => {
                    self.err(&p, "give exactly one of `secret` and `config_map`");
                    continue;
                }
            };
            let Some((namespace, name)) = source
                .split_once('/')
                .filter(|(ns, n)| naming::is_dns_label(ns) && naming::is_dns_subdomain(n))
            else {
                self.err(&p, format!("{source:?} is not `namespace/name` (a DNS label, a slash, a DNS subdomain)"));
                continue;
            };
            let as_name = c.as_name.clone().unwrap_or_else(|| name.to_string());
            if !naming::is_dns_subdomain(&as_name) {
                self.err(
                    &format!("{p}/as"),
                    format!("{as_name:?} is not a DNS subdomain name"),
                );
                continue;
            }
            if out.iter().any(|o| o.kind == kind && o.as_name == as_name) {
                self.err(
                    &p,
                    format!("a {} named {as_name:?} is already copied here", kind.kind()),
                );
                continue;
            }
            out.push(Copy {
                kind,
                namespace: namespace.to_string(),
                name: name.to_string(),
                as_name,
            });
        }
        out
    }

    /// Whether any `values` or `links` of the file uses a name from git: then a render command
    /// may not take `values` or `links` in its arguments either (conservative: a value used in
    /// an argument may come from any level).
    pub(super) fn tainted(&self) -> bool {
        self.all_value_strings
            .iter()
            .any(|t| crate::config::untrusted::uses_untrusted(t))
    }

    /// A namespace template; a literal one is checked here, a templated one when it renders.
    pub(super) fn namespace(&mut self, ns: &str, ptr: &str) {
        self.template_str(ns, ptr);
        if crate::templating::is_template(ns) {
            return;
        }
        if let Err(e) = naming::check_label(ns) {
            self.err(
                ptr,
                format!("namespace {ns:?} is not a valid DNS-1123 label: it {e}"),
            );
        } else if let Some(p) = self.safety.protects(ns) {
            self.err(ptr, format!("namespace {ns:?} is protected (by {p:?}); a staging may never live in it: choose a namespace of its own, such as \"{{{{ staging }}}}\""));
        }
    }

    pub(super) fn render_env(&mut self, names: &[String], ptr: &str) {
        for (i, name) in names.iter().enumerate() {
            let p = format!("{ptr}/{i}");
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                self.err(&p, format!("{name:?} is not an environment variable name"));
            } else if name == "KUBECONFIG" || self.token_envs.contains(name) {
                self.err(&p, format!("{name} holds credentials (a kubeconfig, a repository token or a notification secret) and is never handed to render commands"));
            } else if name.starts_with("OCTOSTAGE_") {
                self.err(&p, format!("{name} is one of octostage's own settings (it may name a kubeconfig); render commands get the context as OCTOSTAGE_* variables already"));
            }
        }
    }

    /// Load and compile the templates of `dir`, reporting what is wrong; the normalized name.
    pub(super) fn templates_dir(&mut self, dir: &str, ptr: &str) -> String {
        let p = Path::new(dir);
        if p.is_absolute()
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            self.err(ptr, format!("templates directory {dir:?} must be a relative path inside the config repository"));
            return dir.to_string();
        }
        let dir = dir.trim_end_matches('/').to_string();
        if self.templates.has_dir(&dir) {
            return dir;
        }
        match self.files.template_files(&dir) {
            Err(e) => self.err(ptr, e.to_string()),
            Ok(files) => {
                if files.is_empty() {
                    self.err(
                        ptr,
                        format!("templates directory {dir:?} holds no *.yaml, *.yml or *.j2 file"),
                    );
                }
                for (file, source) in &files {
                    for (line, expr) in crate::config::untrusted::yaml_template(source) {
                        self.warnings.push(Problem {
                            file: file.clone(),
                            pos: crate::yaml::Pos { line, column: 1 },
                            message: format!("`{{{{ {expr} }}}}` writes a value from git into YAML as it is; whoever pushes chooses it: write `{{{{ {expr} | tojson }}}}`"),
                        });
                    }
                }
                for (problem_file, line, msg) in self.templates.add_dir(&dir, files) {
                    self.problems.push(Problem {
                        file: problem_file,
                        pos: crate::yaml::Pos { line, column: 1 },
                        message: msg,
                    });
                }
            }
        }
        dir
    }

    pub(super) fn template_str(&mut self, text: &str, ptr: &str) {
        let pos = self.positions.value(ptr);
        // A quoted scalar's text starts one column after its quote.
        let quoted = self.positions.is_quoted(ptr);
        let origin = crate::templating::Origin {
            file: self.file.to_string(),
            line: pos.line,
            column: pos.column + usize::from(quoted),
        };
        if let Err(e) = self.templates.add_inline(text, Some(origin)) {
            self.err(ptr, format!("template {text:?}: {e}"));
        }
    }

    pub(super) fn template_values(&mut self, v: &serde_json::Value, ptr: &str) {
        match v {
            serde_json::Value::String(s) => self.template_str(s, ptr),
            serde_json::Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, x)| self.template_values(x, &format!("{ptr}/{i}"))),
            serde_json::Value::Object(m) => m
                .iter()
                .for_each(|(k, x)| self.template_values(x, &format!("{ptr}/{}", escape(k)))),
            _ => {}
        }
    }
}
