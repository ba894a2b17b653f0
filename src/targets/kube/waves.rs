//! Ordered steps: objects annotated `octostage.dev/wave` are applied wave by wave, lowest
//! first, and a wave is applied only once every workload of the waves before it is healthy (a
//! Job complete, a Deployment or StatefulSet ready). A staging that waits stops there for this
//! pass, prunes nothing and is not remembered as applied, so the next pass (asked for by the
//! watch when a workload's status changes) goes on from where it stopped. The wait is bounded
//! by the staging's `health_deadline`: the waiting workload makes it pending, then failing; a
//! failed Job makes it failing at once, with the Job's condition as the reason.

use super::slim::Job;
use super::slim::{Deployment, StatefulSet};
use kube::api::Api;

use super::health::{self, Workload};
use super::retry::not_found;
use super::{api_err, KubeTarget};
use crate::plan::Readiness;
use crate::render::wave;
use crate::targets::TargetError;

/// Indexes of `objects` grouped by wave, lowest wave first, file order kept inside a wave.
pub(super) fn waves<T>(
    objects: &[T],
    body: impl Fn(&T) -> &crate::render::Object,
) -> Vec<(i32, Vec<usize>)> {
    let mut out: Vec<(i32, Vec<usize>)> = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        // Checked when rendered; an object that slipped through runs in wave 0.
        let w = wave(body(o)).unwrap_or(0);
        match out.iter_mut().find(|(x, _)| *x == w) {
            Some((_, v)) => v.push(i),
            None => out.push((w, vec![i])),
        }
    }
    out.sort_by_key(|(w, _)| *w);
    out
}

impl KubeTarget {
    /// Why the workloads among `objects` (`(kind key, name)`) keep the next wave back: the
    /// first failed one, else the first not ready; `None` when all are healthy.
    pub(super) async fn wave_blocked(
        &self,
        ns: &str,
        objects: &[(&str, &str)],
    ) -> Result<Option<String>, TargetError> {
        for &(key, name) in objects {
            let w = match key {
                "batch/v1/Job" => self.workload(ns, name, |j: &Job| health::job(j)).await?,
                "apps/v1/Deployment" => {
                    self.workload(ns, name, |d: &Deployment| health::deployment(d))
                        .await?
                }
                "apps/v1/StatefulSet" => {
                    self.workload(ns, name, |s: &StatefulSet| health::stateful_set(s))
                        .await?
                }
                _ => continue,
            };
            match w.map(|w| w.readiness) {
                Some(Readiness::Ready) => {}
                Some(
                    Readiness::Failed(why) | Readiness::NotReady(why) | Readiness::Unobserved(why),
                ) => return Ok(Some(why)),
                Some(Readiness::Unknown(why)) => return Ok(Some(why)),
                None => return Ok(Some(format!("{key}/{name}: not found"))),
            }
        }
        Ok(None)
    }

    async fn workload<K>(
        &self,
        ns: &str,
        name: &str,
        reduce: impl Fn(&K) -> Option<Workload>,
    ) -> Result<Option<Workload>, TargetError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), ns);
        match self.call(|| api.get(name)).await {
            Ok(o) => Ok(reduce(&o)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(api_err(format!("reading {name} in {ns}"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(name: &str, wave: Option<&str>) -> crate::render::Object {
        let mut o = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
        if let Some(w) = wave {
            o["metadata"]["annotations"] = json!({"octostage.dev/wave": w});
        }
        o.as_object().unwrap().clone()
    }

    #[test]
    fn waves_run_lowest_first_keeping_file_order_inside_one() {
        let objects = vec![
            obj("app", None),
            obj("migrate", Some("-1")),
            obj("smoke", Some("10")),
            obj("config", Some("0")),
            obj("seed", Some("-1")),
        ];
        let w = waves(&objects, |o| o);
        assert_eq!(w, vec![(-1, vec![1, 4]), (0, vec![0, 3]), (10, vec![2])]);
        assert_eq!(waves(&objects[..1], |o| o), vec![(0, vec![0])]);
    }
}
