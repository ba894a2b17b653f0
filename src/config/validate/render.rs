//! Render specs: templates (from the config or the application repository), a command,
//! kustomize or helm; exactly one per level.

use std::sync::Arc;

use super::super::model::*;
use super::super::raw::*;
use super::Validator;

fn origin(o: RawOrigin) -> Origin {
    match o {
        RawOrigin::Config => Origin::Config,
        RawOrigin::App => Origin::App,
    }
}

impl Validator<'_> {
    /// A declared render spec counts as declared even when it is wrong: its own problem is
    /// reported, and "no render spec" on top of it would only mislead.
    pub(super) fn render_spec(&mut self, raw: &RawSettings, ptr: &str) -> Option<Render> {
        let set: Vec<&str> = [
            ("templates", raw.templates.is_some()),
            ("command", raw.command.is_some()),
            ("kustomize", raw.kustomize.is_some()),
            ("helm", raw.helm.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, on)| on.then_some(k))
        .collect();
        match set.as_slice() {
            [a, b] => self.err(ptr, format!("`{a}` and `{b}` are both set here; keep one")),
            [_, _, ..] => self.err(
                ptr,
                format!("`{}` are all set here; keep one", set.join("`, `")),
            ),
            _ => {}
        }
        if let Some(t) = &raw.templates {
            return Some(self.templates_spec(t, &format!("{ptr}/templates")));
        }
        if let Some(cmd) = &raw.command {
            return Some(self.command_spec(cmd, &format!("{ptr}/command")));
        }
        if let Some(k) = &raw.kustomize {
            return Some(self.kustomize_spec(k, &format!("{ptr}/kustomize")));
        }
        raw.helm
            .as_ref()
            .map(|h| self.helm_spec(h, &format!("{ptr}/helm")))
    }

    fn templates_spec(&mut self, t: &RawTemplates, ptr: &str) -> Render {
        match t {
            RawTemplates::Dir(dir) => Render::Templates(self.templates_dir(dir, ptr)),
            RawTemplates::From(f) if f.from == RawOrigin::Config => {
                Render::Templates(self.templates_dir(&f.path, &format!("{ptr}/path")))
            }
            RawTemplates::From(f) => {
                Render::AppTemplates(self.app_path(&f.path, &format!("{ptr}/path")))
            }
        }
    }

    fn app_path(&mut self, p: &str, ptr: &str) -> String {
        if let Err(e) = crate::source::check_app_path(p) {
            self.err(ptr, e.to_string());
        }
        p.trim_end_matches('/').to_string()
    }

    /// A path in the config repository (checked to exist) or the application repository.
    fn repo_path(&mut self, p: &str, from: RawOrigin, ptr: &str) -> String {
        if from == RawOrigin::App {
            return self.app_path(p, ptr);
        }
        if crate::source::check_app_path(p).is_err() {
            self.err(
                ptr,
                format!("{p:?} must be a relative path inside the config repository"),
            );
        } else if !self.files.has_dir(p) {
            self.err(
                ptr,
                format!("directory {p:?} does not exist in the config repository"),
            );
        }
        p.trim_end_matches('/').to_string()
    }

    fn command_spec(&mut self, cmd: &[String], ptr: &str) -> Render {
        if cmd.is_empty() {
            self.err(ptr, "command is empty: give the program and its arguments");
        }
        for (i, arg) in cmd.iter().enumerate() {
            self.template_str(arg, &format!("{ptr}/{i}"));
        }
        for (i, message) in crate::config::untrusted::command(cmd, self.tainted()) {
            self.err(&format!("{ptr}/{i}"), message);
        }
        Render::Command(cmd.to_vec())
    }

    fn kustomize_spec(&mut self, k: &RawKustomize, ptr: &str) -> Render {
        let path = self.repo_path(&k.path, k.from, &format!("{ptr}/path"));
        let mut images = Vec::new();
        for (i, img) in k.images.iter().enumerate() {
            let p = format!("{ptr}/images/{i}");
            for (field, v) in [
                ("new_name", &img.new_name),
                ("new_tag", &img.new_tag),
                ("digest", &img.digest),
            ] {
                if let Some(v) = v {
                    self.template_str(v, &format!("{p}/{field}"));
                }
            }
            if img.new_name.is_none() && img.new_tag.is_none() && img.digest.is_none() {
                self.err(&p, "give `new_name`, `new_tag` or `digest`");
            }
            images.push(KustomizeImage {
                name: img.name.clone(),
                new_name: img.new_name.clone(),
                new_tag: img.new_tag.clone(),
                digest: img.digest.clone(),
            });
        }
        let mut patches = Vec::new();
        for (i, patch) in k.patches.iter().enumerate() {
            let p = format!("{ptr}/patches/{i}/patch");
            self.template_str(&patch.patch, &p);
            for (line, expr) in crate::config::untrusted::yaml_template(&patch.patch) {
                self.warn(&p, format!("line {line} of this patch: `{{{{ {expr} }}}}` writes a value from git into YAML as it is; whoever pushes chooses it: write `{{{{ {expr} | tojson }}}}`"));
            }
            patches.push((patch.patch.clone(), patch.target.clone()));
        }
        Render::Kustomize(Arc::new(Kustomize {
            path,
            from: origin(k.from),
            namespace: k.namespace,
            images,
            patches,
        }))
    }

    fn helm_spec(&mut self, h: &RawHelm, ptr: &str) -> Render {
        let chart = self.repo_path(&h.chart, h.from, &format!("{ptr}/chart"));
        if let Some(r) = &h.release {
            self.template_str(r, &format!("{ptr}/release"));
        }
        let values = h.values.clone().unwrap_or_default();
        self.template_values(
            &serde_json::Value::Object(values.clone()),
            &format!("{ptr}/values"),
        );
        Render::Helm(Arc::new(Helm {
            chart,
            from: origin(h.from),
            release: h.release.clone(),
            values,
        }))
    }
}
