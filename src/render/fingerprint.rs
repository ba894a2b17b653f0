//! What a render reads, as one digest: an unchanged digest means an unchanged render.

use super::Context;
use crate::config::{Config, Render, Settings};

/// A digest of everything a render of this staging reads, so a long-running octostage can skip
/// rendering a staging whose inputs did not change since it was applied: the context (branch,
/// commit, namespace, values, links, the config commit), the templates' contents or the
/// command, and octostage's version. `None` when the inputs cannot be told apart: a render
/// command run from a config directory that is not a git checkout may read any file in it.
pub fn fingerprint(
    config: &Config,
    settings: &Settings,
    ctx: &Context,
    asleep: bool,
) -> Option<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut part = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    part(env!("CARGO_PKG_VERSION").as_bytes());
    part(&serde_json::to_vec(ctx).ok()?);
    part(&settings.render_output_limit.to_le_bytes());
    part(&settings.render_memory_limit.to_le_bytes());
    part(&[u8::from(asleep)]);
    match &settings.render {
        Render::Templates(dir) => {
            part(b"templates");
            part(dir.as_bytes());
            part(config.templates.digest(dir)?.as_bytes());
        }
        Render::Command(args) => {
            part(b"command");
            part(config.commit.as_deref()?.as_bytes());
            for a in args.iter().chain(&settings.render_env) {
                part(a.as_bytes());
            }
        }
        // Files of the application repository are those of the commit, which the context
        // holds; files of the config repository are those of its commit.
        other => {
            part(b"spec");
            part(format!("{other:?}").as_bytes());
            let from_config = match other {
                Render::Kustomize(k) => k.from == crate::config::Origin::Config,
                Render::Helm(h) => h.from == crate::config::Origin::Config,
                _ => false,
            };
            if from_config {
                part(config.commit.as_deref()?.as_bytes());
            }
            for a in &settings.render_env {
                part(a.as_bytes());
            }
        }
    }
    for p in settings.app_export() {
        part(p.as_bytes());
    }
    Some(format!("{:x}", h.finalize()))
}
