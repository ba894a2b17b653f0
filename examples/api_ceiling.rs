//! The API server's own ceiling for the cluster bench: the least a client can send to converge
//! new rendered stagings, one request per object (and one per namespace), `CONCURRENCY`
//! requests in flight, no reads, no ownership checks: a create (`MODE` `create`, what a new
//! object needs) or a server-side apply (`apply`). octostage's converge rate is reported as a
//! ratio of the faster.
//!
//! Usage: `api_ceiling KUBECONFIG DIR PREFIX CONCURRENCY MODE`, where DIR holds one folder of
//! YAML files per staging (as the dir target writes them); each folder's objects go into the
//! namespace `PREFIX<folder>`. Prints `objects requests seconds` (namespaces are objects).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use futures::{stream, StreamExt};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::discovery::Discovery;
use kube::Client;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kubeconfig, dir, prefix, concurrency, mode] = args.as_slice() else {
        bail!("usage: api_ceiling KUBECONFIG DIR PREFIX CONCURRENCY create|apply");
    };
    let create = match mode.as_str() {
        "create" => true,
        "apply" => false,
        _ => bail!("MODE is create or apply"),
    };
    let concurrency: usize = concurrency.parse().context("CONCURRENCY")?;
    let kc = Kubeconfig::read_from(kubeconfig).context("reading the kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    let client = Client::try_from(config)?;
    let discovery = Discovery::new(client.clone()).run().await?;
    let stagings = read_stagings(Path::new(dir), prefix)?;
    let started = Instant::now();
    let pp = PatchParams::apply("api-ceiling").force();
    let namespaces = stagings.iter().map(|(ns, _)| {
        let body =
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        send(&client, &discovery, &pp, create, None, body)
    });
    let ns_results: Vec<Result<()>> = stream::iter(namespaces)
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let objects = stagings.iter().flat_map(|(ns, objs)| {
        objs.iter().map(|o| {
            send(
                &client,
                &discovery,
                &pp,
                create,
                Some(ns.as_str()),
                o.clone(),
            )
        })
    });
    let results: Vec<Result<()>> = stream::iter(objects)
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let requests = ns_results.len() + results.len();
    for r in ns_results.into_iter().chain(results) {
        r?;
    }
    // Namespaces count as objects, as in octostage's figure.
    let objects: usize = stagings.iter().map(|(_, o)| o.len() + 1).sum();
    println!("{objects} {requests} {seconds:.3}");
    Ok(())
}

/// Each staging folder's objects, with the namespace they go to.
fn read_stagings(dir: &Path, prefix: &str) -> Result<Vec<(String, Vec<serde_json::Value>)>> {
    let mut out = Vec::new();
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    for folder in folders {
        let name = folder.file_name().unwrap().to_string_lossy().into_owned();
        let mut objects = Vec::new();
        for f in std::fs::read_dir(&folder)?.flatten() {
            let text = std::fs::read_to_string(f.path())?;
            let value: serde_json::Value = octostage::yaml::document(&text)
                .with_context(|| format!("{}", f.path().display()))?;
            if value.get("kind").and_then(|k| k.as_str()).is_some() {
                objects.push(value);
            }
        }
        out.push((format!("{prefix}{name}"), objects));
    }
    Ok(out)
}

async fn send(
    client: &Client,
    discovery: &Discovery,
    pp: &PatchParams,
    create: bool,
    namespace: Option<&str>,
    mut body: serde_json::Value,
) -> Result<()> {
    let api_version = body["apiVersion"].as_str().unwrap_or_default().to_string();
    let kind = body["kind"].as_str().unwrap_or_default().to_string();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
    let gvk = GroupVersionKind::gvk(group, version, &kind);
    let (resource, _) = discovery
        .resolve_gvk(&gvk)
        .with_context(|| format!("{api_version} {kind} is not served"))?;
    let name = body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => {
            body["metadata"]["namespace"] = ns.into();
            Api::namespaced_with(client.clone(), ns, &resource)
        }
        None => Api::all_with(client.clone(), &resource),
    };
    if create {
        let object: DynamicObject = serde_json::from_value(body)?;
        api.create(&PostParams::default(), &object)
            .await
            .with_context(|| format!("{kind} {name}"))?;
    } else {
        api.patch(&name, pp, &Patch::Apply(body))
            .await
            .with_context(|| format!("{kind} {name}"))?;
    }
    Ok(())
}
