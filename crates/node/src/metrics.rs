//! The node's metrics: every metric name in one place, the functions that record them, and [`Metrics::render`],
//! which `GET /metrics` on the local API answers with (Prometheus text format 0.0.4).
//!
//! Each [`crate::app::App`] has its own [`Metrics`] (a `metrics-exporter-prometheus` recorder that is *not*
//! installed as the process-wide recorder), so several nodes in one process — tests, `sdx demo`, `sdx bench` —
//! never share or mix their series, and no global recorder can conflict. Clone it freely: clones record into the
//! same registry. The engine records through the handle it is given ([`crate::app::App::metrics`]).
//!
//! # Metrics
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `sdx_build_info` | gauge | `version` | always 1; the node's version |
//! | `sdx_http_requests_total` | counter | `listener`, `method`, `route`, `status` | HTTP requests answered |
//! | `sdx_http_request_duration_seconds` | histogram | `listener`, `route` | time from the request head to the response head |
//! | `sdx_connections_open` | gauge | `listener` | TCP connections open now |
//! | `sdx_connections_refused_total` | counter | `listener`, `reason` | connections closed at once because a bound was reached (`reason`: `total`, `perIp`, `perOrg`) |
//! | `sdx_tls_refused_total` | counter | `reason` | peer-endpoint connections refused in or right after the TLS handshake (`reason`: see [`crate::tls::HandshakeFailure::code`], plus `notAPeer` for a certificate without a valid organisation) |
//! | `sdx_delivery_attempts_total` | counter | `peer`, `outcome` | delivery attempts of outgoing messages (`outcome`: `delivered`, `retry`, `dead`, `rejected`, `queued` at a hub) |
//! | `sdx_dead_letters_total` | counter | `peer` | messages that became dead letters |
//! | `sdx_delivery_latency_seconds` | histogram | `peer` | time from enqueueing a message to storing its positive receipt |
//! | `sdx_apply_latency_seconds` | histogram | — | time to open, check, apply and commit a received message |
//! | `sdx_deliveries` | gauge | `peer`, `state` | open outbox entries by state (`pending` — the outbox depth —, `dead`), from the store |
//! | `sdx_outbox_oldest_pending_age_seconds` | gauge | `peer` | age of the oldest pending delivery to the peer, 0 if none |
//! | `sdx_blocked_cases` | gauge | — | cases whose delivery is blocked (an earlier message is a dead letter) |
//!
//! `listener` is `peer` (the peer endpoint) or `api` (the local API); `route` is the matched route template (e.g.
//! `/api/v1/cases/{id}`) or `unmatched`, never a path with ids or a query string; `peer` is the partner's
//! organisation key. No label ever carries personal data: the requester of a case (name, e-mail, phone, address)
//! appears in no metric, and the label values come from fixed sets or from the node's own configuration.
//!
//! The gauges `sdx_deliveries`, `sdx_outbox_oldest_pending_age_seconds` and `sdx_blocked_cases` are set by
//! [`Metrics::set_delivery_stats`] from [`sdx_store::Store::delivery_stats`], every 5 s by the node
//! ([`crate::app::App::run_until_stopped`]); [`Metrics::delivery_attempt`], [`Metrics::delivered`], [`Metrics::applied`]
//! and [`Metrics::dead_letter`] are for the engine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use sdx_model::{OrgKey, Timestamp};
use sdx_store::{DeliveryState, DeliveryStats};

/// `sdx_build_info`
pub const BUILD_INFO: &str = "sdx_build_info";
/// `sdx_http_requests_total`
pub const HTTP_REQUESTS: &str = "sdx_http_requests_total";
/// `sdx_http_request_duration_seconds`
pub const HTTP_REQUEST_DURATION: &str = "sdx_http_request_duration_seconds";
/// `sdx_connections_open`
pub const CONNECTIONS_OPEN: &str = "sdx_connections_open";
/// `sdx_connections_refused_total`
pub const CONNECTIONS_REFUSED: &str = "sdx_connections_refused_total";
/// `sdx_tls_refused_total`
pub const TLS_REFUSED: &str = "sdx_tls_refused_total";
/// `sdx_delivery_attempts_total`
pub const DELIVERY_ATTEMPTS: &str = "sdx_delivery_attempts_total";
/// `sdx_dead_letters_total`
pub const DEAD_LETTERS: &str = "sdx_dead_letters_total";
/// `sdx_delivery_latency_seconds`
pub const DELIVERY_LATENCY: &str = "sdx_delivery_latency_seconds";
/// `sdx_apply_latency_seconds`
pub const APPLY_LATENCY: &str = "sdx_apply_latency_seconds";
/// `sdx_deliveries`
pub const DELIVERIES: &str = "sdx_deliveries";
/// `sdx_outbox_oldest_pending_age_seconds`
pub const OUTBOX_OLDEST_PENDING_AGE: &str = "sdx_outbox_oldest_pending_age_seconds";
/// `sdx_blocked_cases`
pub const BLOCKED_CASES: &str = "sdx_blocked_cases";
/// Gauge: version of the directory of responsibilities held now (absent without a directory).
pub const DIRECTORY_VERSION: &str = "sdx_directory_version";
/// Gauge: Unix time (seconds) at which the held directory expires.
pub const DIRECTORY_EXPIRES: &str = "sdx_directory_expires_at_seconds";
/// Counter: directory reloads, by outcome (`installed`, `unchanged`) or by the error code of a refused one.
pub const DIRECTORY_RELOADS: &str = "sdx_directory_reloads_total";

/// Every metric: name, kind, unit, help text (the `# HELP` line).
const DESCRIPTIONS: &[(&str, Kind, Option<Unit>, &str)] = &[
    (BUILD_INFO, Kind::Gauge, None, "Always 1; the label `version` names the node's version."),
    (HTTP_REQUESTS, Kind::Counter, None, "HTTP requests answered, by listener, method, matched route and status."),
    (HTTP_REQUEST_DURATION, Kind::Histogram, Some(Unit::Seconds), "Time from the request head to the response head."),
    (CONNECTIONS_OPEN, Kind::Gauge, None, "TCP connections open now, by listener."),
    (CONNECTIONS_REFUSED, Kind::Counter, None, "Connections closed at once because a connection bound was reached."),
    (TLS_REFUSED, Kind::Counter, None, "Peer-endpoint connections refused in or right after the TLS handshake."),
    (DELIVERY_ATTEMPTS, Kind::Counter, None, "Delivery attempts of outgoing messages, by peer and outcome."),
    (DEAD_LETTERS, Kind::Counter, None, "Outgoing messages that became dead letters, by peer."),
    (DELIVERY_LATENCY, Kind::Histogram, Some(Unit::Seconds), "Time from enqueueing a message to its positive receipt."),
    (APPLY_LATENCY, Kind::Histogram, Some(Unit::Seconds), "Time to open, check, apply and commit a received message."),
    (DELIVERIES, Kind::Gauge, None, "Open outbox entries by peer and state (pending, dead)."),
    (OUTBOX_OLDEST_PENDING_AGE, Kind::Gauge, Some(Unit::Seconds), "Age of the oldest pending delivery, by peer."),
    (BLOCKED_CASES, Kind::Gauge, None, "Cases whose delivery is blocked by an earlier dead letter."),
    (DIRECTORY_VERSION, Kind::Gauge, None, "Version of the directory of responsibilities held now."),
    (DIRECTORY_EXPIRES, Kind::Gauge, Some(Unit::Seconds), "Unix time at which the held directory expires."),
    (
        DIRECTORY_RELOADS,
        Kind::Counter,
        None,
        "Directory loads by outcome: installed, unchanged, or the refusal's code.",
    ),
];

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Buckets of the HTTP and apply latency histograms, in seconds.
const FAST_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 90.0];
/// Buckets of the delivery latency histogram, in seconds: from a fast link to a peer that was down for a day.
const DELIVERY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

static METADATA: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// What became of one delivery attempt ([`Metrics::delivery_attempt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// A positive receipt was stored.
    Delivered,
    /// It failed and will be retried.
    Retry,
    /// It failed and became a dead letter.
    Dead,
    /// The peer answered with a negative receipt.
    Rejected,
    /// A hub took it into its outbox; its receipt comes later.
    Queued,
}

impl DeliveryOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retry => "retry",
            DeliveryOutcome::Dead => "dead",
            DeliveryOutcome::Rejected => "rejected",
            DeliveryOutcome::Queued => "queued",
        }
    }
}

/// One node's metrics registry and the recording functions. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Gauge series set by the last [`Metrics::set_delivery_stats`], to zero those that disappeared.
    gauges_seen: std::sync::Mutex<Vec<Key>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A new, empty registry with every metric described.
    pub fn new() -> Metrics {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DELIVERY_LATENCY.into()), DELIVERY_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), FAST_BUCKETS));
        // Both bucket lists are non-empty constants, the only way these calls fail.
        let recorder = builder.unwrap_or_else(|_| PrometheusBuilder::new()).build_recorder();
        for (name, kind, unit, help) in DESCRIPTIONS {
            let help = SharedString::const_str(help);
            match kind {
                Kind::Counter => recorder.describe_counter((*name).into(), *unit, help),
                Kind::Gauge => recorder.describe_gauge((*name).into(), *unit, help),
                Kind::Histogram => recorder.describe_histogram((*name).into(), *unit, help),
            }
        }
        let handle = recorder.handle();
        let m = Metrics { inner: Arc::new(Inner { recorder, handle, gauges_seen: Default::default() }) };
        m.gauge(BUILD_INFO, vec![Label::new("version", env!("CARGO_PKG_VERSION"))]).set(1.0);
        m.inner.handle.run_upkeep();
        m
    }

    /// The registry in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.inner.handle.render()
    }

    /// Drain histogram samples into their buckets and publish descriptions; run every few seconds (the node does it
    /// in [`crate::app::App::run_until_stopped`]) so memory stays bounded between scrapes.
    pub fn run_upkeep(&self) {
        self.inner.handle.run_upkeep();
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.inner.recorder.register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        self.inner.recorder.register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        self.inner.recorder.register_histogram(&Key::from_parts(name, labels), &METADATA)
    }

    // --- for the engine -----------------------------------------------------------------------------------------

    /// One delivery attempt to `peer` ended with `outcome`.
    pub fn delivery_attempt(&self, peer: &OrgKey, outcome: DeliveryOutcome) {
        let labels = vec![Label::new("peer", peer.to_string()), Label::new("outcome", outcome.as_str())];
        self.counter(DELIVERY_ATTEMPTS, labels).increment(1);
    }

    /// A message to `peer`, queued at `queued_at`, got its positive receipt now.
    pub fn delivered(&self, peer: &OrgKey, queued_at: Timestamp) {
        let ms = (Timestamp::now().unix_millis() - queued_at.unix_millis()).max(0);
        self.histogram(DELIVERY_LATENCY, vec![Label::new("peer", peer.to_string())]).record(ms as f64 / 1000.0);
    }

    /// A received message was applied and committed; it arrived at `started`.
    pub fn applied(&self, started: Instant) {
        self.histogram(APPLY_LATENCY, Vec::new()).record(started.elapsed().as_secs_f64());
    }

    /// A directory load ended with `outcome` (`installed`, `unchanged` or an error code); `held` is the directory
    /// held afterwards (version and expiry).
    pub fn directory_loaded(&self, outcome: &str, held: Option<(u64, Timestamp)>) {
        self.counter(DIRECTORY_RELOADS, vec![Label::new("outcome", outcome.to_string())]).increment(1);
        if let Some((version, expires)) = held {
            self.gauge(DIRECTORY_VERSION, Vec::new()).set(version as f64);
            self.gauge(DIRECTORY_EXPIRES, Vec::new()).set((expires.unix_millis() / 1000) as f64);
        }
    }

    /// A message to `peer` became a dead letter.
    pub fn dead_letter(&self, peer: &OrgKey) {
        self.counter(DEAD_LETTERS, vec![Label::new("peer", peer.to_string())]).increment(1);
    }

    /// Set the outbox gauges from the store's counts ([`sdx_store::Store::delivery_stats`]); series that were set
    /// before and are absent now (a peer whose outbox emptied) go to 0.
    pub fn set_delivery_stats(&self, stats: &DeliveryStats) {
        let now = Timestamp::now().unix_millis();
        let mut set: Vec<(Key, f64)> = Vec::new();
        for open in &stats.open {
            let peer = open.peer.to_string();
            let labels = vec![Label::new("peer", peer.clone()), Label::new("state", open.state.as_str())];
            set.push((Key::from_parts(DELIVERIES, labels), open.count as f64));
            if open.state == DeliveryState::Pending {
                let age = (now - open.oldest.unix_millis()).max(0) as f64 / 1000.0;
                set.push((Key::from_parts(OUTBOX_OLDEST_PENDING_AGE, vec![Label::new("peer", peer)]), age));
            }
        }
        set.push((Key::from_name(BLOCKED_CASES), stats.blocked_cases as f64));
        let mut seen = self.inner.gauges_seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for old in seen.iter() {
            if !set.iter().any(|(k, _)| k == old) {
                self.inner.recorder.register_gauge(old, &METADATA).set(0.0);
            }
        }
        for (key, value) in &set {
            self.inner.recorder.register_gauge(key, &METADATA).set(*value);
        }
        for (key, _) in set {
            if !seen.contains(&key) {
                seen.push(key);
            }
        }
    }

    // --- for the servers ----------------------------------------------------------------------------------------

    /// An HTTP request on `listener` was answered.
    pub(crate) fn http_request(
        &self,
        listener: &'static str,
        method: &'static str,
        route: String,
        status: u16,
        took: Duration,
    ) {
        let route = SharedString::from_owned(route);
        let labels = vec![
            Label::new("listener", listener),
            Label::new("method", method),
            Label::new("route", route.clone()),
            Label::new("status", status_label(status)),
        ];
        self.counter(HTTP_REQUESTS, labels).increment(1);
        let labels = vec![Label::new("listener", listener), Label::new("route", route)];
        self.histogram(HTTP_REQUEST_DURATION, labels).record(took.as_secs_f64());
    }

    /// The gauge of open connections on `listener`.
    pub(crate) fn connections_open(&self, listener: &'static str) -> Gauge {
        self.gauge(CONNECTIONS_OPEN, vec![Label::new("listener", listener)])
    }

    /// A connection on `listener` was closed at once because of the bound `reason`.
    pub(crate) fn connection_refused(&self, listener: &'static str, reason: &'static str) {
        let labels = vec![Label::new("listener", listener), Label::new("reason", reason)];
        self.counter(CONNECTIONS_REFUSED, labels).increment(1);
    }

    /// A peer-endpoint connection was refused in or right after the TLS handshake.
    pub(crate) fn tls_refused(&self, reason: &'static str) {
        self.counter(TLS_REFUSED, vec![Label::new("reason", reason)]).increment(1);
    }
}

/// The status as a label value, without allocating for the usual ones.
fn status_label(status: u16) -> SharedString {
    const USUAL: [(u16, &str); 17] = [
        (200, "200"),
        (201, "201"),
        (204, "204"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (408, "408"),
        (409, "409"),
        (413, "413"),
        (415, "415"),
        (422, "422"),
        (429, "429"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
    ];
    match USUAL.iter().find(|(code, _)| *code == status) {
        Some((_, text)) => SharedString::const_str(text),
        None => SharedString::from_owned(status.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_described_series_and_keeps_registries_apart() {
        let a = Metrics::new();
        let b = Metrics::new();
        let peer = OrgKey::parse("psw:01000115").unwrap();
        a.delivery_attempt(&peer, DeliveryOutcome::Retry);
        a.delivery_attempt(&peer, DeliveryOutcome::Retry);
        a.dead_letter(&peer);
        a.applied(Instant::now());
        a.delivered(&peer, Timestamp::now());
        a.http_request("api", "GET", "/api/v1/cases/{id}".into(), 200, Duration::from_millis(3));
        a.http_request("api", "GET", "/api/v1/cases/{id}".into(), 299, Duration::from_millis(3));
        let text = a.render();
        assert!(text.contains(r#"sdx_delivery_attempts_total{peer="psw:01000115",outcome="retry"} 2"#), "{text}");
        assert!(text.contains(r#"sdx_dead_letters_total{peer="psw:01000115"} 1"#), "{text}");
        assert!(text.contains("# TYPE sdx_apply_latency_seconds histogram"), "{text}");
        assert!(text.contains(r#"sdx_delivery_latency_seconds_bucket{peer="psw:01000115",le="86400"} 1"#), "{text}");
        assert!(text.contains("# HELP sdx_http_requests_total"), "{text}");
        for status in ["200", "299"] {
            let series = format!(
                r#"sdx_http_requests_total{{listener="api",method="GET",route="/api/v1/cases/{{id}}",status="{status}"}} 1"#
            );
            assert!(text.contains(&series), "{text}");
        }
        assert!(text.contains(r#"sdx_build_info{version=""#), "{text}");
        // Another node's registry saw none of it.
        assert!(!b.render().contains("sdx_delivery_attempts_total{"), "{}", b.render());
    }

    #[test]
    fn delivery_gauges_that_disappear_go_to_zero() {
        use sdx_store::OpenDeliveries;
        let m = Metrics::new();
        let peer = OrgKey::parse("psw:01000115").unwrap();
        let open = |state, count| OpenDeliveries { peer: peer.clone(), state, count, oldest: Timestamp::now() };
        m.set_delivery_stats(&DeliveryStats {
            open: vec![open(DeliveryState::Pending, 3), open(DeliveryState::Dead, 1)],
            blocked_cases: 1,
        });
        let text = m.render();
        assert!(text.contains(r#"sdx_deliveries{peer="psw:01000115",state="pending"} 3"#), "{text}");
        assert!(text.contains(r#"sdx_deliveries{peer="psw:01000115",state="dead"} 1"#), "{text}");
        assert!(text.contains(r#"sdx_outbox_oldest_pending_age_seconds{peer="psw:01000115"} "#), "{text}");
        assert!(text.contains("sdx_blocked_cases 1"), "{text}");
        m.set_delivery_stats(&DeliveryStats { open: vec![open(DeliveryState::Dead, 1)], blocked_cases: 0 });
        let text = m.render();
        assert!(text.contains(r#"sdx_deliveries{peer="psw:01000115",state="pending"} 0"#), "{text}");
        assert!(text.contains(r#"sdx_deliveries{peer="psw:01000115",state="dead"} 1"#), "{text}");
        assert!(text.contains(r#"sdx_outbox_oldest_pending_age_seconds{peer="psw:01000115"} 0"#), "{text}");
        assert!(text.contains("sdx_blocked_cases 0"), "{text}");
    }
}
