//! Prometheus metrics, served as text at `GET /metrics`: request counts and latency histograms
//! per route pattern (`/api/v1/communes/{code}`, not the raw path, so that the label set stays
//! bounded; buckets from 0.1 ms up to the 30-s request deadline), the store's size and record
//! counts, read at each scrape, the answer cache's bytes, budget, answers, hits and misses,
//! `voisinage_build_info{version}` (always 1), and on Linux the process's own
//! (`process_resident_memory_bytes`, `process_cpu_seconds_total`, `process_open_fds`,
//! `process_max_fds`, `process_virtual_memory_bytes`, `process_start_time_seconds`, read from
//! `/proc` at each scrape).

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// The service's metrics registry.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    store_bytes: IntGauge,
    adoptions: IntGauge,
    feedback: IntGauge,
    store: StoreMetrics,
    cache: CacheMetrics,
}

/// The answer cache's metrics ([`crate::service::AnswerCacheStats`]), set at each scrape.
struct CacheMetrics {
    bytes: IntGauge,
    capacity: IntGauge,
    answers: IntGauge,
    /// `voisinage_answer_cache_requests_total{result="hit"|"miss"}`, raised to the service's
    /// counts at each scrape (under the mutex, so that two scrapes never add the same twice).
    requests: std::sync::Mutex<IntCounterVec>,
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
        let build_info =
            IntGaugeVec::new(Opts::new("voisinage_build_info", "The running version of voisinage (always 1)"), &["version"]).expect("valid metric");
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let store = StoreMetrics {
            errors: std::sync::Mutex::new(
                prometheus::IntCounter::new("voisinage_store_errors_total", "Store writes and readiness probes that failed since start").expect("valid metric"),
            ),
            failing: IntGauge::new("voisinage_store_failing", "1 while the store refuses writes after a failure, else 0").expect("valid metric"),
            sync_seconds: prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    "voisinage_store_sync_duration_seconds",
                    "Time of one group commit of the store (sled flush, fdatasync of its files), seconds",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
        };
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let cache = CacheMetrics {
            bytes: gauge("voisinage_answer_cache_bytes", "Bytes the recommendation answer cache counts now (bodies, keys, bookkeeping)"),
            capacity: gauge("voisinage_answer_cache_capacity_bytes", "Budget of the recommendation answer cache, bytes (--answer-cache-mib)"),
            answers: gauge("voisinage_answer_cache_answers", "Recommendation answers the cache holds now"),
            requests: std::sync::Mutex::new(
                IntCounterVec::new(
                    Opts::new(
                        "voisinage_answer_cache_requests_total",
                        "Recommendations answered from the cache (hit) or computed (miss) since start; refused questions are neither",
                    ),
                    &["result"],
                )
                .expect("valid metric"),
            ),
        };
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self())).expect("metric registered once");
        for m in [
            Box::new(build_info) as Box<dyn prometheus::core::Collector>,
            Box::new(requests.clone()),
            Box::new(latency.clone()),
            Box::new(store_bytes.clone()),
            Box::new(adoptions.clone()),
            Box::new(feedback.clone()),
            Box::new(store.errors.lock().unwrap_or_else(|p| p.into_inner()).clone()),
            Box::new(store.failing.clone()),
            Box::new(store.sync_seconds.clone()),
            Box::new(cache.bytes.clone()),
            Box::new(cache.capacity.clone()),
            Box::new(cache.answers.clone()),
            Box::new(cache.requests.lock().unwrap_or_else(|p| p.into_inner()).clone()),
        ] {
            registry.register(m).expect("metric registered once");
        }
        Metrics { registry, requests, latency, store_bytes, adoptions, feedback, store, cache }
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

    /// The text exposition (format 0.0.4), after setting the store's metrics from `stats` and
    /// the answer cache's from `c`.
    pub fn render(&self, stats: &crate::service::Stats, c: crate::service::AnswerCacheStats) -> String {
        self.store_bytes.set(stats.store_bytes as i64);
        self.adoptions.set(stats.adoptions as i64);
        self.feedback.set(stats.feedback as i64);
        self.cache.bytes.set(c.bytes as i64);
        self.cache.capacity.set(c.capacity as i64);
        self.cache.answers.set(c.answers as i64);
        {
            let requests = self.cache.requests.lock().unwrap_or_else(|p| p.into_inner());
            for (result, total) in [("hit", c.hits), ("miss", c.misses)] {
                let counter = requests.with_label_values(&[result]);
                counter.inc_by(total.saturating_sub(counter.get()));
            }
        }
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
