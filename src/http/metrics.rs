//! Prometheus metrics, served as text at `GET /metrics`: request counts and latency histograms
//! per route pattern (`/api/v1/communes/{code}`, not the raw path, so that the label set stays
//! bounded), and the store's size and record counts, read at each scrape.

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// The service's metrics registry.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    store_bytes: IntGauge,
    adoptions: IntGauge,
    feedback: IntGauge,
    store: StoreMetrics,
}

/// The store's metrics: errors, failing state, sync latency.
struct StoreMetrics {
    /// `voisinage_store_errors_total`, raised to the service's count at each scrape (under the
    /// mutex, so that two scrapes never add the same errors twice).
    errors: std::sync::Mutex<prometheus::IntCounter>,
    failing: IntGauge,
    sync_seconds: prometheus::Histogram,
}

/// Buckets of the latency histograms, seconds: 0.1 ms to the 30-s request deadline.
pub const LATENCY_BUCKETS: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Metrics {
        let requests = IntCounterVec::new(
            Opts::new("voisinage_http_requests_total", "HTTP requests answered, by method, route pattern and status"),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new("voisinage_http_request_duration_seconds", "Time to answer an HTTP request, seconds, by method and route pattern")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route"],
        )
        .expect("valid metric");
        let store_bytes = IntGauge::new("voisinage_store_bytes", "Size of the store's files on disk, bytes").expect("valid metric");
        let adoptions = IntGauge::new("voisinage_adoptions", "Adoptions held (simulated included)").expect("valid metric");
        let feedback = IntGauge::new("voisinage_feedback", "Feedback records held (simulated included)").expect("valid metric");
        let store = StoreMetrics {
            errors: std::sync::Mutex::new(
                prometheus::IntCounter::new("voisinage_store_errors_total", "Store writes and readiness probes that failed since start").expect("valid metric"),
            ),
            failing: IntGauge::new("voisinage_store_failing", "1 while the store refuses writes after a failure, else 0").expect("valid metric"),
            sync_seconds: prometheus::Histogram::with_opts(
                HistogramOpts::new("voisinage_store_sync_duration_seconds", "Time of one group commit of the store (sled flush, fdatasync of its files), seconds")
                    .buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
        };
        let registry = Registry::new();
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(store_bytes.clone()),
            Box::new(adoptions.clone()),
            Box::new(feedback.clone()),
            Box::new(store.errors.lock().unwrap_or_else(|p| p.into_inner()).clone()),
            Box::new(store.failing.clone()),
            Box::new(store.sync_seconds.clone()),
        ] {
            registry.register(m).expect("metric registered once");
        }
        Metrics { registry, requests, latency, store_bytes, adoptions, feedback, store }
    }

    /// The function to give the store ([`crate::service::Service::on_store_sync`]): observes
    /// each sync's duration, seconds.
    pub fn sync_observer(&self) -> crate::store::SyncObserver {
        let h = self.store.sync_seconds.clone();
        Box::new(move |seconds| h.observe(seconds))
    }

    /// Sets the store's error count and failing state (at each scrape).
    pub fn set_store_state(&self, errors: u64, failing: bool) {
        let counter = self.store.errors.lock().unwrap_or_else(|p| p.into_inner());
        counter.inc_by(errors.saturating_sub(counter.get()));
        self.store.failing.set(i64::from(failing));
    }

    /// Records one answered request. `route` is the matched pattern, or `unmatched`.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests.with_label_values(&[method, route, status.to_string().as_str()]).inc();
        self.latency.with_label_values(&[method, route]).observe(seconds);
    }

    /// The text exposition (format 0.0.4), after setting the store gauges.
    pub fn render(&self, store_bytes: u64, adoptions: usize, feedback: usize) -> String {
        self.store_bytes.set(store_bytes as i64);
        self.adoptions.set(adoptions as i64);
        self.feedback.set(feedback as i64);
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
