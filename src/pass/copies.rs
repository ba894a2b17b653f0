//! `copy` in a pass: every source is read once per pass (however many stagings copy it), and
//! each staging that copies it gets the copy among its objects. The digest of what was copied
//! joins the staging's render fingerprint, so a rotated source is written into every staging on
//! the next pass and an unchanged one costs no write.

use std::collections::{BTreeSet, HashMap};

use futures::StreamExt;

use super::StagingError;
use crate::config::{Copy, Settings};
use crate::plan::Plan;
use crate::render::{object_id, Object};
use crate::targets::{Target, TargetError};

/// What each source read gave: the body to write, or why not (never a value).
pub type Copied = HashMap<Copy, Result<Object, CopyError>>;

/// Why a source of `copy` was not read this pass.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CopyError {
    /// The target could not read it.
    #[error(transparent)]
    Read(std::sync::Arc<TargetError>),
    /// Reading every source took longer than the pass allows.
    #[error("{source_name}: reading the sources of `copy` did not finish within {}", humantime::format_duration(*after))]
    Late {
        /// The source (`namespace/name`).
        source_name: String,
        /// How long the reads were given.
        after: std::time::Duration,
    },
}

/// How many sources are read at once.
const PARALLEL: usize = 8;

/// Read every source the stagings of `plan` that will exist copy, each once, bounded as a
/// whole by `limit`.
pub async fn read(plan: &Plan, target: &dyn Target, limit: std::time::Duration) -> Copied {
    let wanted: BTreeSet<&Copy> = plan
        .stagings
        .iter()
        .filter(|s| s.exists_after() && s.error.is_none())
        .filter_map(|s| s.settings.as_ref())
        .flat_map(|s| s.copy.iter())
        .collect();
    if wanted.is_empty() {
        return Copied::new();
    }
    let reads = futures::stream::iter(wanted.iter().copied())
        .map(|c| async move {
            (
                c.clone(),
                target
                    .read_copy(c)
                    .await
                    .map_err(|e| CopyError::Read(std::sync::Arc::new(e))),
            )
        })
        .buffer_unordered(PARALLEL)
        .collect::<Vec<_>>();
    match tokio::time::timeout(limit, reads).await {
        Ok(read) => read.into_iter().collect(),
        Err(_) => wanted
            .into_iter()
            .map(|c| {
                let why = CopyError::Late {
                    source_name: c.source(),
                    after: limit,
                };
                (c.clone(), Err(why))
            })
            .collect(),
    }
}

/// The copies `settings.copy` asks for, and the digest of them for the fingerprint.
pub fn collect(
    settings: &Settings,
    copied: &Copied,
) -> Result<(Vec<Object>, Option<String>), StagingError> {
    if settings.copy.is_empty() {
        return Ok((Vec::new(), None));
    }
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut out = Vec::with_capacity(settings.copy.len());
    for c in &settings.copy {
        let body = match copied.get(c) {
            Some(Ok(b)) => b.clone(),
            Some(Err(why)) => return Err(failed(why.to_string())),
            None => return Err(failed(format!("{}: was not read in this pass", c.source()))),
        };
        h.update(serde_json::to_vec(&body).unwrap_or_default());
        out.push(body);
    }
    Ok((out, Some(format!("{:x}", h.finalize()))))
}

/// Add `copies`, owned like rendered objects, to the rendered `objects`; one the templates
/// render too is an error.
pub fn add(
    objects: &mut Vec<Object>,
    copies: Vec<Object>,
    ctx: &crate::render::Context,
) -> Result<(), StagingError> {
    for mut body in copies {
        crate::render::own(&mut body, ctx);
        let id = object_id(&body);
        if objects.iter().any(|o| object_id(o) == id) {
            return Err(failed(format!(
                "`copy` would write {id}, which the templates render too; rename one (`as:`)"
            )));
        }
        objects.push(body);
    }
    Ok(())
}

fn failed(message: String) -> StagingError {
    StagingError::Target(TargetError::Io {
        path: "copy".into(),
        cause: crate::targets::Cause::other(message),
    })
}
