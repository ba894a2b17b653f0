//! Following one watch into its store: listing, then events, listing again after an error
//! (with backoff) or a restart; telling the controller which stagings changed.

use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::watcher::{self, watcher, ListSemantic};
use kube::Resource;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::cache::{Event, Store};
use crate::targets::Dirty;

type Shared<K, V> = Arc<Mutex<Store<K, V>>>;

/// The API server closes a watch after this many seconds and the watch resumes where it was:
/// shorter than the client's read timeout, so a quiet watch is never mistaken for a dead one.
const WATCH_TIMEOUT_SECS: u32 = 290;
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_LIMIT: Duration = Duration::from_secs(30);

/// How a watch tells the controller: a staging (or all) marked, then a wake-up.
#[derive(Clone)]
pub(super) struct Tell {
    changed: Arc<Notify>,
    dirty: Arc<Mutex<Dirty>>,
}

impl Tell {
    pub(super) fn new(changed: &Arc<Notify>, dirty: &Arc<Mutex<Dirty>>) -> Tell {
        Tell {
            changed: changed.clone(),
            dirty: dirty.clone(),
        }
    }

    /// Mark staging `name` changed, for `why` (logged at debug level), and wake the controller.
    pub(super) fn staging(&self, name: &str, why: &'static str) {
        debug!(staging = name, why, "changed in the cluster");
        {
            let mut d = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
            if d.all || !d.stagings.insert(name.to_string()) {
                return;
            }
        }
        self.changed.notify_one();
    }

    /// Mark staging `name`'s workloads' readiness changed, and wake the controller.
    pub(super) fn health(&self, name: &str) {
        debug!(
            staging = name,
            why = "a workload's readiness",
            "changed in the cluster"
        );
        {
            let mut d = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
            if d.all || d.stagings.contains(name) || !d.health.insert(name.to_string()) {
                return;
            }
        }
        self.changed.notify_one();
    }

    pub(super) fn all(&self) {
        let mut d = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        d.all = true;
        d.stagings.clear();
        d.health.clear();
        drop(d);
        self.changed.notify_one();
    }
}

/// Where a watch stands between its events.
struct Progress {
    backoff: Duration,
    /// The failure said last, said once (RBAC that does not grant a kind fails at every retry).
    told: Option<String>,
    /// Whether a first listing finished.
    listed: bool,
}

/// One event of a watch as its store takes it, telling `changed` what it changes.
fn convert<K, Key, V>(
    event: watcher::Event<K>,
    store: &Shared<Key, V>,
    reduce: &impl Fn(&K) -> (Key, Option<V>),
    changed: &impl Fn(Option<&V>, Option<&V>),
    tell: &Tell,
    st: &mut Progress,
) -> Event<Key, V>
where
    K: Resource,
    Key: Eq + std::hash::Hash + Clone,
    V: Clone,
{
    let one = |o: &K| {
        let (k, v) = reduce(o);
        (k, o.meta().resource_version.clone().unwrap_or_default(), v)
    };
    match event {
        watcher::Event::Init => Event::Init,
        watcher::Event::InitApply(o) => {
            let (k, version, v) = one(&o);
            Event::InitApply(k, version, v)
        }
        watcher::Event::InitDone => {
            st.backoff = BACKOFF_FIRST;
            // A listing after the first one may follow missed events: every staging
            // is looked at again.
            if std::mem::replace(&mut st.listed, true) {
                tell.all();
            }
            if st.told.take().is_some() {
                tracing::info!("watch recovered");
            }
            Event::InitDone
        }
        watcher::Event::Apply(o) => {
            let (k, version, v) = one(&o);
            let s = store.lock().expect("store");
            changed(s.get(&k), v.as_ref());
            Event::Apply(k, version, v)
        }
        watcher::Event::Delete(o) => {
            let k = reduce(&o).0;
            changed(store.lock().expect("store").get(&k), None);
            Event::Delete(k)
        }
    }
}

/// Say that a watch failed: once for the same failure, at debug level after that.
fn say_failed(e: &watcher::Error, told: &mut Option<String>) {
    let said = e.to_string();
    // kube appends the whole Status in Debug form: the message says it all.
    let said = crate::redact::text(said.split(" (Status {").next().unwrap_or(&said)).into_owned();
    if told.as_deref() == Some(said.as_str()) {
        debug!("watch failed again: {said}");
    } else {
        warn!("watch failed, passes list until it recovers: {said}");
        *told = Some(said);
    }
}

/// Follow one watch into `store` until `stop`, listing again after every error or restart.
/// `changed` sees each change after the first listing: the value before and after.
#[allow(clippy::too_many_arguments)]
pub(super) async fn follow<K, Key, V>(
    api: Api<K>,
    config: watcher::Config,
    store: Shared<Key, V>,
    restart: Arc<Notify>,
    stop: CancellationToken,
    tell: Tell,
    reduce: impl Fn(&K) -> (Key, Option<V>) + Send + 'static,
    changed: impl Fn(Option<&V>, Option<&V>) + Send + 'static,
) where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    Key: Eq + std::hash::Hash + Clone + Send,
    V: Clone + Send,
{
    // Lists are read from etcd, not the API server's cache: a listing that starts after a
    // write must show it (see `cache`).
    let mut config = config.timeout(WATCH_TIMEOUT_SECS);
    config.list_semantic = ListSemantic::MostRecent;
    let mut st = Progress {
        backoff: BACKOFF_FIRST,
        told: None,
        listed: false,
    };
    loop {
        let mut stream = pin!(watcher(api.clone(), config.clone()));
        loop {
            // Stopping first: on the way out, connections close under the watches.
            let next = tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = restart.notified() => {
                    debug!("watch restarted");
                    break;
                }
                next = stream.next() => next,
            };
            let event = match next {
                Some(Ok(e)) => e,
                Some(Err(_)) if stop.is_cancelled() => return,
                Some(Err(e)) => {
                    say_failed(&e, &mut st.told);
                    break;
                }
                None => break,
            };
            let event = convert(event, &store, &reduce, &changed, &tell, &mut st);
            store.lock().expect("store").event(event, Instant::now());
        }
        store.lock().expect("store").fail();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(st.backoff) => {}
        }
        st.backoff = (st.backoff * 2).min(BACKOFF_LIMIT);
    }
}
