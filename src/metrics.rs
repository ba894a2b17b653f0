//! Prometheus metrics of this process (`GET /metrics`), one registry. The controller, the
//! kube client, the sources, the notifier and the HTTP server count into it; labels are
//! stable names (an error's kind, an HTTP verb), never free text, so that series stay few.

use std::sync::atomic::AtomicI64;
use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `environment` and `state` of a staging.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StagingLabels {
    /// Environment name.
    pub environment: String,
    /// Lifecycle (`running`, `sleeping:schedule`, ...).
    pub state: String,
}

/// A pass's result: `ok`, `failures` (some stagings or sources failed) or `error` (it could
/// not run).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// The result.
    pub result: String,
}

/// An API request's verb and outcome (`ok`, `4xx`, `5xx`, `transport`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// get, list, watch, create, update, patch, delete.
    pub verb: String,
    /// ok, 4xx code class, 5xx, transport.
    pub outcome: String,
}

/// A webhook delivery's provider and result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookLabels {
    /// github, gitlab, gitea, generic.
    pub provider: String,
    /// accepted, ignored, unauthorized, malformed, too-large.
    pub result: String,
}

/// An environment.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnvLabel {
    /// Environment name.
    pub environment: String,
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// Stagings by environment and lifecycle, as of the last pass.
    pub stagings: Family<StagingLabels, Gauge>,
    /// Passes by result.
    pub passes: Family<ResultLabel, Counter>,
    /// How long passes take.
    pub pass_duration: Histogram,
    /// Kubernetes API requests by verb and outcome.
    pub api_requests: Family<RequestLabels, Counter>,
    /// How long a repository listing (fetch included) takes.
    pub fetch_duration: Histogram,
    /// Failed listings, by environment.
    pub fetch_failures: Family<EnvLabel, Counter>,
    /// Deletions a safety rule holds back, as of the last pass.
    pub held_deletions: Gauge,
    /// Notifications given up.
    pub notification_failures: Counter,
    /// Webhook deliveries by provider and result.
    pub webhooks: Family<HookLabels, Counter>,
    /// 1 while this process holds the lease (or needs none), else 0.
    pub leader: Gauge<i64, AtomicI64>,
    /// Writes not sent because this process's lease had lapsed.
    pub writes_refused: Counter,
    /// 1 when the last pass read environments.yaml whole, 0 when an environment (or the
    /// file) was invalid.
    pub config_valid: Gauge<i64, AtomicI64>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("octostage");
        let m = Metrics {
            stagings: Family::default(),
            passes: Family::default(),
            pass_duration: Histogram::new(exponential_buckets(0.005, 2.0, 16)),
            api_requests: Family::default(),
            fetch_duration: Histogram::new(exponential_buckets(0.005, 2.0, 16)),
            fetch_failures: Family::default(),
            held_deletions: Gauge::default(),
            notification_failures: Counter::default(),
            webhooks: Family::default(),
            leader: Gauge::default(),
            writes_refused: Counter::default(),
            config_valid: Gauge::default(),
            registry: Registry::default(),
        };
        // Registration clones the handles: the fields and the registry share each metric.
        registry.register(
            "stagings",
            "Stagings by environment and state",
            m.stagings.clone(),
        );
        registry.register(
            "passes",
            "Passes by result: ok, failures, error, cancelled, or unchanged (nothing to do)",
            m.passes.clone(),
        );
        registry.register(
            "pass_duration_seconds",
            "How long a pass takes",
            m.pass_duration.clone(),
        );
        registry.register(
            "kube_requests",
            "Kubernetes API requests by verb and outcome",
            m.api_requests.clone(),
        );
        registry.register(
            "source_fetch_duration_seconds",
            "How long listing a repository's branches takes, fetch included",
            m.fetch_duration.clone(),
        );
        registry.register(
            "source_fetch_failures",
            "Listings that failed, by environment",
            m.fetch_failures.clone(),
        );
        registry.register(
            "held_deletions",
            "Deletions a safety rule holds back, as of the last pass",
            m.held_deletions.clone(),
        );
        registry.register(
            "notification_failures",
            "Notifications given up",
            m.notification_failures.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook deliveries by provider and result",
            m.webhooks.clone(),
        );
        registry.register(
            "leader",
            "1 while this process may write (it holds the lease, or needs none)",
            m.leader.clone(),
        );
        registry.register(
            "config_valid",
            "1 when the last pass read environments.yaml whole; 0 when an environment (frozen) or the whole file was invalid",
            m.config_valid.clone(),
        );
        registry.register(
            "writes_refused",
            "Writes not sent because this process's lease had lapsed (a replica paused past its lease)",
            m.writes_refused.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// This process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// Count a webhook delivery.
pub fn webhook(provider: &str, result: &str) {
    get()
        .webhooks
        .get_or_create(&HookLabels {
            provider: provider.into(),
            result: result.into(),
        })
        .inc();
}

/// Count one Kubernetes API request.
pub fn api_request(verb: &str, outcome: &str) {
    get()
        .api_requests
        .get_or_create(&RequestLabels {
            verb: verb.into(),
            outcome: outcome.into(),
        })
        .inc();
}
