//! Serving HTTP on both listeners of a node with the same timeouts and connection bounds: the peer endpoint
//! (mutual TLS, [`crate::tls::serve_mtls_with`]) and the local API (plain HTTP, [`serve_plain`]). Both run on
//! axum-server (hyper's HTTP/1.1 + HTTP/2 server) with `TCP_NODELAY` on every accepted socket, graceful shutdown,
//! and one tracing span and one metrics sample per request.
//!
//! # What is bounded, and how
//!
//! | bound | setting (`[limits]`) | how |
//! |---|---|---|
//! | TLS handshake (peer endpoint) | `handshake_timeout_ms` | the connection is dropped; logged with the reason |
//! | first request on a connection | `header_read_timeout_ms` | a client that sends nothing after connecting (or after the TLS handshake), or only part of a request head, is disconnected. This also covers hyper's detection of HTTP/1.1 versus HTTP/2, which has no timer of its own |
//! | request head (HTTP/1.1) | `header_read_timeout_ms` | hyper's header timeout; its timer starts whenever the connection waits for a request head, so an idle HTTP/1.1 keep-alive connection is closed after this time too |
//! | pause in a request body | `body_read_timeout_ms` | the body read fails and the request is refused (400); the timer runs only while the handler waits for body data that has not arrived |
//! | whole request | `peer_request_timeout_ms`, `api_request_timeout_ms` | answered `503` problem `internal` (retryable) when the handler has not answered in time |
//! | idle connection | `idle_timeout_ms` | no request in flight for this long: the connection is closed gracefully (HTTP/2: GOAWAY) |
//! | dead HTTP/2 connection | `http2_keep_alive_interval_ms`, `http2_keep_alive_timeout_ms` | hyper pings a quiet connection and drops it if the ping is not answered |
//! | requests on one HTTP/2 connection | `http2_max_concurrent_streams` | advertised in the HTTP/2 settings |
//! | open connections | `*_max_connections`, `*_max_connections_per_ip`, `peer_max_connections_per_org` | counted when accepted (per IP address before any TLS) and, on the peer endpoint, per organisation after the handshake; a connection over a bound is closed at once, logged (at most a few lines per 10 s) and counted in `sdx_connections_refused_total` |
//!
//! Request spans (`request`, INFO) carry `listener`, `method`, `route` (the matched route template, never a path
//! with ids or a query string), `remote` and, on the peer endpoint, `peer` (the organisation); an event at DEBUG
//! (`answered`) adds `status` and `latency_ms`. Bodies are never logged.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::accept::Accept;
use axum_server::{ConnectionShutdown, Handle};
use sdx_model::{ErrorCode, OrgKey};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tracing::Instrument;

use crate::metrics::Metrics;
use crate::settings::LimitSettings;
use crate::tls::PeerIdentity;

/// How long a server lets requests in flight finish after its shutdown future completes.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Which of the node's two listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// The peer endpoint (HTTPS, mutual TLS).
    Peer,
    /// The local API (plain HTTP).
    Api,
}

impl ListenerKind {
    /// The metrics label value: `peer` or `api`.
    pub fn label(self) -> &'static str {
        match self {
            ListenerKind::Peer => "peer",
            ListenerKind::Api => "api",
        }
    }

    /// The name in messages: `peer endpoint` or `local API`.
    pub fn name(self) -> &'static str {
        match self {
            ListenerKind::Peer => "peer endpoint",
            ListenerKind::Api => "local API",
        }
    }
}

/// The timeouts and connection bounds of one listener (see the module docs), made from [`LimitSettings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// TLS handshake (peer endpoint only).
    pub handshake_timeout: Duration,
    /// Request line and headers; also the wait for the first request.
    pub header_read_timeout: Duration,
    /// Longest pause between two pieces of a request body.
    pub body_read_timeout: Duration,
    /// A whole request, from its head to the answer.
    pub request_timeout: Duration,
    /// No request in flight for this long: the connection is closed.
    pub idle_timeout: Duration,
    /// HTTP/2 keep-alive ping interval.
    pub http2_keep_alive_interval: Duration,
    /// HTTP/2 keep-alive ping timeout.
    pub http2_keep_alive_timeout: Duration,
    /// HTTP/2 requests in flight per connection.
    pub http2_max_concurrent_streams: u32,
    /// Open connections in total.
    pub max_connections: usize,
    /// Open connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Open connections of one organisation (peer endpoint only).
    pub max_connections_per_org: usize,
}

impl ServerLimits {
    fn common(l: &LimitSettings, request_ms: u64, total: usize, per_ip: usize, per_org: usize) -> ServerLimits {
        let ms = Duration::from_millis;
        ServerLimits {
            handshake_timeout: ms(l.handshake_timeout_ms),
            header_read_timeout: ms(l.header_read_timeout_ms),
            body_read_timeout: ms(l.body_read_timeout_ms),
            request_timeout: ms(request_ms),
            idle_timeout: ms(l.idle_timeout_ms),
            http2_keep_alive_interval: ms(l.http2_keep_alive_interval_ms),
            http2_keep_alive_timeout: ms(l.http2_keep_alive_timeout_ms),
            http2_max_concurrent_streams: l.http2_max_concurrent_streams,
            max_connections: total,
            max_connections_per_ip: per_ip,
            max_connections_per_org: per_org,
        }
    }

    /// The peer endpoint's limits.
    pub fn peer(l: &LimitSettings) -> ServerLimits {
        let (total, ip, org) = (l.peer_max_connections, l.peer_max_connections_per_ip, l.peer_max_connections_per_org);
        ServerLimits::common(l, l.peer_request_timeout_ms, total, ip, org)
    }

    /// The local API's limits.
    pub fn api(l: &LimitSettings) -> ServerLimits {
        ServerLimits::common(
            l,
            l.api_request_timeout_ms,
            l.api_max_connections,
            l.api_max_connections_per_ip,
            usize::MAX,
        )
    }
}

impl Default for ServerLimits {
    /// The peer endpoint's defaults.
    fn default() -> Self {
        ServerLimits::peer(&LimitSettings::default())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Connection bounds

/// Why a connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    Total,
    PerKey,
}

struct Counts<K> {
    total: usize,
    per_key: HashMap<K, usize>,
}

/// Counters of open connections, in total and per key (IP address or organisation).
pub(crate) struct Slots<K> {
    max_total: usize,
    max_per_key: usize,
    counts: Mutex<Counts<K>>,
    open: Option<metrics::Gauge>,
}

impl<K: Hash + Eq + Clone> Slots<K> {
    pub(crate) fn new(max_total: usize, max_per_key: usize, open: Option<metrics::Gauge>) -> Arc<Slots<K>> {
        let counts = Mutex::new(Counts { total: 0, per_key: HashMap::new() });
        Arc::new(Slots { max_total, max_per_key, counts, open })
    }

    /// A slot for one more connection with `key`, or which bound is reached.
    pub(crate) fn take(self: &Arc<Self>, key: K) -> Result<Slot<K>, Full> {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if c.total >= self.max_total {
            return Err(Full::Total);
        }
        let n = c.per_key.entry(key.clone()).or_insert(0);
        if *n >= self.max_per_key {
            return Err(Full::PerKey);
        }
        *n += 1;
        c.total += 1;
        if let Some(g) = &self.open {
            g.set(c.total as f64);
        }
        Ok(Slot { slots: Arc::clone(self), key })
    }
}

/// One open connection counted in [`Slots`]; dropping it frees the slot.
pub(crate) struct Slot<K: Hash + Eq + Clone> {
    slots: Arc<Slots<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut c = self.slots.counts.lock().unwrap_or_else(PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_key.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                c.per_key.remove(&self.key);
            }
        }
        if let Some(g) = &self.slots.open {
            g.set(c.total as f64);
        }
    }
}

/// At most `max` warnings per 10 s for one kind of event; the next warning after a quiet spell says how many were
/// left out. An attacker who opens thousands of connections must not flood the log.
pub(crate) struct LogThrottle {
    state: Mutex<(Option<Instant>, u32, u64)>,
    max: u32,
}

impl LogThrottle {
    const WINDOW: Duration = Duration::from_secs(10);

    pub(crate) fn new(max: u32) -> LogThrottle {
        LogThrottle { state: Mutex::new((None, 0, 0)), max }
    }

    /// `Some(n)` if this event may be logged (`n` events were left out before it), `None` if it is left out.
    pub(crate) fn allow(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if s.0.is_none_or(|start| now.duration_since(start) >= Self::WINDOW) {
            *s = (Some(now), 0, s.2);
        }
        if s.1 < self.max {
            s.1 += 1;
            let suppressed = s.2;
            s.2 = 0;
            Some(suppressed)
        } else {
            s.2 += 1;
            None
        }
    }
}

/// ` (n similar left out)` after a throttled warning, or nothing.
pub(crate) fn left_out(n: u64) -> String {
    if n == 0 { String::new() } else { format!(" ({n} similar left out before this)") }
}

/// The per-listener state shared by all its connections: bounds, logging, metrics.
pub(crate) struct Gate {
    pub(crate) kind: ListenerKind,
    pub(crate) limits: ServerLimits,
    pub(crate) metrics: Metrics,
    by_ip: Arc<Slots<IpAddr>>,
    pub(crate) by_org: Arc<Slots<OrgKey>>,
    refusals: LogThrottle,
    pub(crate) failures: LogThrottle,
}

impl Gate {
    pub(crate) fn new(kind: ListenerKind, limits: &ServerLimits, metrics: &Metrics) -> Arc<Gate> {
        let open = metrics.connections_open(kind.label());
        open.set(0.0);
        Arc::new(Gate {
            kind,
            limits: limits.clone(),
            metrics: metrics.clone(),
            by_ip: Slots::new(limits.max_connections, limits.max_connections_per_ip, Some(open)),
            by_org: Slots::new(usize::MAX, limits.max_connections_per_org, None),
            refusals: LogThrottle::new(10),
            failures: LogThrottle::new(20),
        })
    }

    /// Admit a freshly accepted TCP connection: `TCP_NODELAY`, then the total and per-IP bounds.
    pub(crate) fn admit(&self, stream: &TcpStream) -> io::Result<(SocketAddr, Slot<IpAddr>)> {
        stream.set_nodelay(true)?;
        let remote = stream.peer_addr()?;
        match self.by_ip.take(remote.ip()) {
            Ok(slot) => Ok((remote, slot)),
            Err(full) => {
                let (reason, what, max) = match full {
                    Full::Total => ("total", "open connections in total", self.limits.max_connections),
                    Full::PerKey => ("perIp", "open connections from this address", self.limits.max_connections_per_ip),
                };
                Err(self.refuse(remote, reason, what, max))
            }
        }
    }

    /// Count and (throttled) log a connection closed because of a bound; the error to return from the acceptor.
    pub(crate) fn refuse(&self, remote: SocketAddr, reason: &'static str, what: &str, max: usize) -> io::Error {
        self.metrics.connection_refused(self.kind.label(), reason);
        if let Some(n) = self.refusals.allow() {
            let name = self.kind.name();
            tracing::warn!(listener = self.kind.label(), %remote, "{name}: connection closed: {max} {what} reached{}", left_out(n));
        }
        io::Error::other(format!("{}: {max} {what} reached", self.kind.name()))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Per connection: requests in flight, idle timeout

/// One open connection: its slots, its requests in flight, and how to close it.
pub(crate) struct Conn {
    remote: SocketAddr,
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `epoch` when the last request finished (or the connection opened).
    idle_since_ms: AtomicU64,
    /// How to close the connection gracefully; known from its first request on.
    shutdown: OnceLock<ConnectionShutdown>,
    closed: Arc<Notify>,
    _ip: Slot<IpAddr>,
    _org: Option<Slot<OrgKey>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.closed.notify_one();
    }
}

impl Conn {
    /// A connection holding its slots; a watchdog closes it after `idle` without a request in flight.
    pub(crate) fn open(remote: SocketAddr, ip: Slot<IpAddr>, org: Option<Slot<OrgKey>>, idle: Duration) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            remote,
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            shutdown: OnceLock::new(),
            closed: Arc::new(Notify::new()),
            _ip: ip,
            _org: org,
        });
        let (weak, closed) = (Arc::downgrade(&conn), Arc::clone(&conn.closed));
        tokio::spawn(async move {
            loop {
                let wait = match weak.upgrade() {
                    None => return,
                    Some(c) if c.in_flight.load(Ordering::Acquire) > 0 => idle,
                    Some(c) => {
                        let since = c.epoch + Duration::from_millis(c.idle_since_ms.load(Ordering::Acquire));
                        match idle.checked_sub(since.elapsed()) {
                            Some(left) if !left.is_zero() => left,
                            _ => {
                                tracing::debug!("closing a connection idle for {} ms", idle.as_millis());
                                if let Some(s) = c.shutdown.get() {
                                    s.graceful_shutdown();
                                }
                                return;
                            }
                        }
                    }
                };
                tokio::select! {
                    () = closed.notified() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        });
        conn
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(self))
    }
}

/// A request in flight on a [`Conn`].
struct Busy(Arc<Conn>);

impl Drop for Busy {
    fn drop(&mut self) {
        let ms = u64::try_from(self.0.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.idle_since_ms.store(ms, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The request extension that leads from a request to its [`Conn`].
#[derive(Clone)]
struct ConnHandle(Arc<Conn>);

/// Adds the connection's [`ConnHandle`] to every request and learns how to close the connection.
#[derive(Clone)]
pub(crate) struct ConnService<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S> ConnService<S> {
    pub(crate) fn new(inner: S, conn: Arc<Conn>) -> Self {
        ConnService { inner, conn }
    }
}

impl<S, B> tower_service::Service<axum::http::Request<B>> for ConnService<S>
where
    S: tower_service::Service<axum::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: axum::http::Request<B>) -> Self::Future {
        if self.conn.shutdown.get().is_none()
            && let Some(s) = request.extensions().get::<ConnectionShutdown>()
        {
            let _ = self.conn.shutdown.set(s.clone());
        }
        request.extensions_mut().insert(ConnHandle(Arc::clone(&self.conn)));
        self.inner.call(request)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Per request: span, metrics, whole-request timeout

#[derive(Clone)]
struct Observe {
    kind: ListenerKind,
    metrics: Metrics,
    request_timeout: Duration,
    body_read_timeout: Duration,
}

/// A request body that fails when it stalls — no piece for `limit` while the handler waits for one. The timer is
/// armed only when the body has nothing ready, so a body that is already there costs none.
struct StallTimeout {
    body: Body,
    limit: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The error of a [`StallTimeout`] body.
#[derive(Debug, thiserror::Error)]
#[error("the request body stalled for longer than the body read timeout")]
struct BodyStalled;

impl http_body::Body for StallTimeout {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.sleep = None;
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let limit = this.limit;
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyStalled)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Known methods by name; anything else is `other` (a label must not take arbitrary client input).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

async fn observe(State(o): State<Observe>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let conn = request.extensions().get::<ConnHandle>().map(|c| Arc::clone(&c.0));
    let busy = conn.as_ref().map(Conn::begin);
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_owned();
    let span = tracing::info_span!(
        "request",
        listener = o.kind.label(),
        method,
        route = %route,
        remote = tracing::field::Empty,
        peer = tracing::field::Empty,
    );
    if !span.is_disabled() {
        if let Some(c) = &conn {
            span.record("remote", tracing::field::display(&c.remote));
        }
        if let Some(peer) = request.extensions().get::<PeerIdentity>() {
            span.record("peer", tracing::field::display(&peer.org));
        }
    }
    drop(conn);
    let request = request.map(|body| Body::new(StallTimeout { body, limit: o.body_read_timeout, sleep: None }));
    let mut handled = std::pin::pin!(next.run(request).instrument(span.clone()));
    // Most answers are ready at the first poll; only those that are not get a timer (timers cost per request).
    let first = std::future::poll_fn(|cx| Poll::Ready(handled.as_mut().poll(cx))).await;
    let answered = match first {
        Poll::Ready(r) => Ok(r),
        Poll::Pending => tokio::time::timeout(o.request_timeout, handled).await,
    };
    let response = match answered {
        Ok(r) => r,
        Err(_) => {
            let ms = o.request_timeout.as_millis();
            tracing::warn!(parent: &span, timeout_ms = ms as u64, "request not answered within the request timeout");
            crate::error::ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Internal,
                format!("the request was not answered within {ms} ms; retry"),
            )
            .into_response()
        }
    };
    let took = started.elapsed();
    let status = response.status().as_u16();
    tracing::debug!(parent: &span, status, latency_ms = took.as_secs_f64() * 1e3, "answered");
    o.metrics.http_request(o.kind.label(), method, route, status, took);
    drop(busy);
    response
}

/// `router` with the per-request layer: span and metrics, whole-request and body-read timeouts.
pub(crate) fn layered(router: Router, kind: ListenerKind, limits: &ServerLimits, metrics: &Metrics) -> Router {
    let observe_state = Observe {
        kind,
        metrics: metrics.clone(),
        request_timeout: limits.request_timeout,
        body_read_timeout: limits.body_read_timeout,
    };
    router.layer(axum::middleware::from_fn_with_state(observe_state, observe))
}

// ---------------------------------------------------------------------------------------------------------------
// Serving

/// Serve `router` on `listener` with `acceptor` (which must admit connections through a [`Gate`] and wrap their
/// service in [`ConnService`]) until `shutdown` completes; then stop accepting and give requests in flight up to
/// [`SHUTDOWN_GRACE`].
pub(crate) async fn serve_with<A>(
    listener: std::net::TcpListener,
    router: Router,
    acceptor: A,
    gate: &Gate,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()>
where
    A: Accept<TcpStream, Router> + Clone + Send + Sync + 'static,
    A::Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    A::Service: axum_server::service::SendService<axum::http::Request<hyper::body::Incoming>> + Send,
    A::Future: Send,
{
    let limits = &gate.limits;
    let handle: Handle<SocketAddr> = Handle::new();
    let watcher = {
        let handle = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
        })
    };
    let router = layered(router, gate.kind, limits, &gate.metrics);
    let kind = gate.kind;
    let accept_failures = Arc::new(LogThrottle::new(5));
    let mut server = axum_server::from_tcp(listener)?
        .acceptor(acceptor)
        .handle(handle)
        .first_request_timeout(limits.header_read_timeout)
        .accept_error_handler(move |remote: Option<&SocketAddr>, e: &io::Error| {
            // Connections the acceptor refused are logged there; this is for the listener itself (e.g. EMFILE).
            if remote.is_none()
                && let Some(n) = accept_failures.allow()
            {
                tracing::warn!(
                    listener = kind.label(),
                    "{}: accepting a connection failed: {e}{}",
                    kind.name(),
                    left_out(n)
                );
            }
        });
    let builder = server.http_builder();
    builder.http1().header_read_timeout(limits.header_read_timeout).keep_alive(true);
    builder
        .http2()
        .keep_alive_interval(limits.http2_keep_alive_interval)
        .keep_alive_timeout(limits.http2_keep_alive_timeout)
        .max_concurrent_streams(limits.http2_max_concurrent_streams);
    let served = server.serve(router.into_make_service()).await;
    watcher.abort();
    served
}

/// Admits plain TCP connections through the local API's [`Gate`].
#[derive(Clone)]
struct PlainAcceptor {
    gate: Arc<Gate>,
}

impl<S: Send + 'static> Accept<TcpStream, S> for PlainAcceptor {
    type Stream = TcpStream;
    type Service = ConnService<S>;
    type Future = std::future::Ready<io::Result<(TcpStream, ConnService<S>)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        std::future::ready(self.gate.admit(&stream).map(|(remote, slot)| {
            let conn = Conn::open(remote, slot, None, self.gate.limits.idle_timeout);
            (stream, ConnService::new(service, conn))
        }))
    }
}

/// Serve `router` over plain HTTP (the local API) with `limits` on `listener` until `shutdown` completes, then
/// let requests in flight finish for up to [`SHUTDOWN_GRACE`]. Requests are counted in `metrics` with
/// `listener="api"`. `listener` is switched to non-blocking mode here; must run inside a Tokio runtime.
pub async fn serve_plain(
    listener: std::net::TcpListener,
    router: Router,
    limits: &ServerLimits,
    metrics: &Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    let gate = Gate::new(ListenerKind::Api, limits, metrics);
    serve_with(listener, router, PlainAcceptor { gate: Arc::clone(&gate) }, &gate, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_bound_total_and_per_key_and_free_on_drop() {
        let slots: Arc<Slots<u8>> = Slots::new(3, 2, None);
        let a1 = slots.take(1).unwrap();
        let _a2 = slots.take(1).unwrap();
        assert_eq!(slots.take(1).err(), Some(Full::PerKey));
        let _b1 = slots.take(2).unwrap();
        assert_eq!(slots.take(3).err(), Some(Full::Total));
        drop(a1);
        let _a3 = slots.take(1).unwrap();
        assert_eq!(slots.counts.lock().unwrap().per_key.len(), 2);
    }

    #[test]
    fn log_throttle_lets_a_few_through_and_counts_the_rest() {
        let t = LogThrottle::new(2);
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        // A new window reports what was left out.
        t.state.lock().unwrap().0 = Some(Instant::now() - LogThrottle::WINDOW);
        assert_eq!(t.allow(), Some(2));
    }

    #[test]
    fn limits_from_settings() {
        let s = LimitSettings::default();
        let (peer, api) = (ServerLimits::peer(&s), ServerLimits::api(&s));
        assert_eq!(peer.request_timeout, Duration::from_secs(30));
        assert_eq!(api.request_timeout, Duration::from_secs(90));
        assert_eq!((peer.max_connections_per_ip, api.max_connections_per_ip), (256, 512));
        assert_eq!((peer.max_connections_per_org, api.max_connections_per_org), (128, usize::MAX));
        assert_eq!(ServerLimits::default(), peer);
    }
}
