//! Start-up: [`App::build`] turns [`Settings`] into a running node — both listeners bound first (port 0 allowed;
//! [`App::peer_addr`], [`App::api_addr`] tell the ports; a port in use is an error naming the listener and the
//! address), keys and certificates loaded, store opened and migrated — and [`App::run_until_stopped`] serves peers
//! over mutual TLS, serves the local API (plain HTTP, bearer tokens) and runs the delivery worker until the
//! shutdown future completes, then stops accepting, lets requests in flight finish and returns. Both servers are
//! bounded by the `[limits]` settings ([`crate::server`]).
//!
//! Next to the local API's routes the same listener answers `/healthz`, `/readyz` and `/metrics` without a token
//! ([`crate::ops_api`]).
//!
//! Errors ([`AppError`]) follow one rule: a variant either shows its cause in its own message or exposes it as
//! `source()`, never both, so `{:#}` (anyhow) prints every cause once.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sdx_crypto::{PrivateKey, PublicKey};
use sdx_store::{AnyStore, Store, open_any};

use crate::engine::{Engine, EngineError, Peer};
use crate::local_api;
use crate::metrics::Metrics;
use crate::ops_api;
use crate::peer_api::{self, HttpTransport};
use crate::pki::NodeCert;
use crate::protocol::Identity;
use crate::server::{self, ListenerKind, ServerLimits};
use crate::settings::{LimitSettings, Settings};
use crate::tls;

/// Why a node could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// Which file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Key or certificate material is unusable.
    #[error("{what} in {path}: {detail}")]
    Material {
        /// What it should have been.
        what: &'static str,
        /// Which file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// A listener could not be bound (e.g. the port is in use).
    #[error("cannot bind the {} to {addr}", listener.name())]
    Bind {
        /// Which listener.
        listener: ListenerKind,
        /// The address from the settings.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A listener failed while serving.
    #[error("the {} failed", listener.name())]
    Serve {
        /// Which listener.
        listener: ListenerKind,
        /// Why.
        source: std::io::Error,
    },
    /// The store could not be opened or used.
    #[error("storage")]
    Store(#[from] sdx_store::Error),
    /// Another network failure.
    #[error("network")]
    Io(#[from] std::io::Error),
    /// TLS set-up failed.
    #[error("TLS set-up")]
    Tls(#[from] tls::TlsError),
    /// The directory of responsibilities could not be loaded.
    #[error("directory")]
    Directory(#[from] Box<crate::directory::DirectoryError>),
    /// The API clients' case ownership settings contradict each other.
    #[error("api clients: {0}")]
    Clients(#[from] crate::clients::OwnersError),
}

fn read(path: &Path) -> Result<String, AppError> {
    std::fs::read_to_string(path).map_err(|source| AppError::Read { path: path.display().to_string(), source })
}

fn material(what: &'static str, path: &Path, detail: impl std::fmt::Display) -> AppError {
    AppError::Material { what, path: path.display().to_string(), detail: detail.to_string() }
}

/// Why a public key whose `kid` is not its RFC 7638 thumbprint is refused.
fn kid_mismatch(key: &PublicKey, thumbprint: &str) -> String {
    format!(
        "its kid {:?} is not the key's RFC 7638 thumbprint {thumbprint} (`sdx keys show`): the file was changed, \
         or is not the key its owner made",
        key.kid()
    )
}

fn bind(listener: ListenerKind, addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr).map_err(|source| AppError::Bind { listener, addr, source })
}

/// A node, built and bound, not yet serving.
pub struct App {
    engine: Engine<AnyStore>,
    listener: TcpListener,
    api_listener: TcpListener,
    api_router: axum::Router,
    server_config: Arc<rustls::ServerConfig>,
    transport: HttpTransport,
    /// Requests in flight.
    concurrency: u32,
    /// Messages per request.
    batch: u32,
    limits: LimitSettings,
    metrics: Metrics,
    /// Webhooks with their HMAC keys.
    webhooks: Vec<(crate::webhooks::WebhookSettings, Vec<u8>)>,
    /// Node or hub.
    role: crate::settings::NodeRole,
    /// The directory's source and the peers of the settings (merged with the directory's on every reload).
    directory: Option<(crate::directory::DirectorySource, Vec<Peer>)>,
    /// The directory's certificate pins, and how to make a client under them anew (when they change).
    pins: Option<(Arc<dyn tls::CertPins>, NewClient)>,
}

/// Makes the node's HTTPS client for its peers.
type NewClient = Arc<dyn Fn() -> Result<reqwest::Client, tls::TlsError> + Send + Sync>;

impl App {
    /// Build the node from its settings.
    pub async fn build(settings: Settings) -> Result<App, AppError> {
        // Bind first: a second process with the same settings stops here, before it touches the store.
        let listener = bind(ListenerKind::Peer, settings.node.listen)?;
        let api_listener = bind(ListenerKind::Api, settings.api.listen)?;
        let k = &settings.keys;
        let signing_key = PrivateKey::from_pkcs8_pem(&read(&k.signing_key)?)
            .map_err(|e| material("signing key (PKCS#8 PEM)", &k.signing_key, e))?;
        let cert = NodeCert::from_pem(&read(&k.tls_cert)?, &read(&k.tls_key)?)
            .map_err(|e| material("TLS certificate and key", &k.tls_cert, e))?;
        match cert.org() {
            Ok(org) if org == settings.node.org => {}
            Ok(org) => {
                return Err(material(
                    "TLS certificate",
                    &k.tls_cert,
                    format!("is for {org}, not {}", settings.node.org),
                ));
            }
            Err(e) => return Err(material("TLS certificate", &k.tls_cert, e)),
        }
        let ca_pem = read(&k.federation_ca)?;
        let mut webhooks = Vec::new();
        for w in &settings.webhooks {
            let key = std::fs::read(&w.secret_file).map_err(|e| material("webhook secret", &w.secret_file, e))?;
            let key = String::from_utf8_lossy(&key).trim().as_bytes().to_vec();
            if key.len() < 32 {
                return Err(material("webhook secret", &w.secret_file, "is shorter than 32 bytes"));
            }
            webhooks.push((w.clone(), key));
        }
        let mut peers = Vec::new();
        for p in &settings.peers {
            // One key, or a JWK set of the keys the peer may sign with (old and new during a rollover; a message
            // is checked with the key its `kid` names).
            let what = "peer signing key (JWK or JWK set)";
            let mut keys = PublicKey::from_jwk_set(&read(&p.signing_key)?)
                .map_err(|e| material(what, &p.signing_key, e))?
                .into_iter();
            let Some(key) = keys.next() else { return Err(material(what, &p.signing_key, "holds no key")) };
            let mut peer = Peer::new(p.org.clone(), p.url.clone(), key);
            peer.other_keys = keys.collect();
            for key in std::iter::once(&peer.key).chain(&peer.other_keys) {
                if !key.alg().is_signature() {
                    return Err(material(
                        what,
                        &p.signing_key,
                        format!("holds a {} key, not a signing key", key.alg()),
                    ));
                }
                // Operators compare the kid with the peer over a second channel: it must be the key's thumbprint.
                let thumbprint = key.thumbprint();
                if key.kid() != thumbprint {
                    return Err(material(what, &p.signing_key, kid_mismatch(key, &thumbprint)));
                }
            }
            peers.push(peer);
        }
        let store = open_any(&settings.storage.url, settings.storage.schema.as_deref()).await?;
        let identity = Identity { org: settings.node.org.clone(), name: settings.node.name.clone(), signing_key };
        let concurrency = u32::try_from(settings.delivery.concurrency).unwrap_or(u32::MAX);
        let batch = u32::try_from(settings.delivery.batch).unwrap_or(1);
        // One registry per node (see `crate::metrics`); the engine records into it too.
        let metrics = Metrics::new();
        let directory = match &settings.directory {
            Some(d) => {
                let (source, reload) = crate::directory::open(d).await.map_err(Box::new)?;
                crate::directory::report_start(&metrics, &source, reload);
                Some(source)
            }
            None => None,
        };
        // The directory's certificate pins, on both sides of every handshake (none without a directory).
        let pins = directory
            .as_ref()
            .map(|d| Arc::new(crate::directory::DirectoryPins(Arc::clone(d.holder()))) as Arc<dyn tls::CertPins>);
        let server_config = tls::server_config_pinned(&cert, &ca_pem, pins.clone())?;
        let new_client: NewClient = {
            let (cert, ca_pem, pins) = (cert.clone(), ca_pem.clone(), pins.clone());
            Arc::new(move || {
                Ok(tls::http_client_builder(tls::client_config_pinned(&cert, &ca_pem, pins.clone())?).build()?)
            })
        };
        let client = new_client()?;
        let configured = peers.clone();
        let peers = crate::directory::peers(
            directory.as_ref().and_then(|d| d.holder().current()).as_deref(),
            &identity.org,
            &peers,
        );
        let holder = directory.as_ref().map(|d| Arc::clone(d.holder()));
        let engine = Engine::with_directory(identity, store, peers, holder, settings.delivery.clone(), metrics.clone());
        engine.set_owners(crate::clients::Owners::from_clients(&settings.api.clients)?);
        engine.set_check_responsibility(settings.directory.as_ref().is_some_and(|d| d.check_responsibility));
        if let Some(path) = &k.encryption_key {
            let key = PrivateKey::from_pkcs8_pem(&read(path)?)
                .map_err(|e| material("encryption key (PKCS#8 PEM)", path, e))?;
            if key.signing_alg() != sdx_crypto::Alg::Ps512 {
                return Err(material("encryption key", path, "must be an RSA key (RSA-OAEP-256)"));
            }
            engine.set_decryption_key(key);
        }
        let released = match engine.release_leases().await {
            Ok(n) => n,
            Err(EngineError::Store(e)) => return Err(AppError::Store(e)),
            Err(e) => return Err(AppError::Store(sdx_store::Error::Invalid(e.to_string()))),
        };
        if released > 0 {
            tracing::info!(released, "released delivery leases left by a previous process");
        }
        let feed_wait =
            std::time::Duration::from_secs(settings.api.feed_max_wait_s.min(crate::connector_api::MAX_FEED_WAIT_S));
        let api_router = local_api::router_with(engine.clone(), &settings.api.clients, feed_wait)
            .merge(ops_api::router(engine.clone(), metrics.clone()));
        Ok(App {
            engine,
            listener,
            api_listener,
            api_router,
            server_config,
            transport: HttpTransport::new(client),
            concurrency,
            batch,
            limits: settings.limits.clone(),
            metrics,
            webhooks,
            directory: directory.map(|d| (d, configured)),
            role: settings.node.role,
            pins: pins.map(|p| (p, new_client)),
        })
    }

    /// The address the peer endpoint is bound to.
    pub fn peer_addr(&self) -> Result<SocketAddr, AppError> {
        Ok(self.listener.local_addr()?)
    }

    /// The address the local API is bound to.
    pub fn api_addr(&self) -> Result<SocketAddr, AppError> {
        Ok(self.api_listener.local_addr()?)
    }

    /// The engine (for the local API and tests).
    pub fn engine(&self) -> &Engine<AnyStore> {
        &self.engine
    }

    /// This node's metrics (what `GET /metrics` renders); hand a clone to whatever records for the node.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Serve peers and the local API and deliver the outbox until `shutdown` completes.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), AppError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let (peer_limits, api_limits) = (ServerLimits::peer(&self.limits), ServerLimits::api(&self.limits));
        let server = tokio::spawn({
            let mut router = match self.role {
                crate::settings::NodeRole::Node => peer_api::router(self.engine.clone()),
                crate::settings::NodeRole::Hub => crate::hub::router(self.engine.clone(), self.transport.clone()),
            };
            if let Some((pins, _)) = &self.pins {
                router = router.layer(axum::middleware::from_fn_with_state(Arc::clone(pins), tls::require_pinned));
            }
            let (config, metrics) = (self.server_config, self.metrics.clone());
            let stop = stopped(stop_rx.clone());
            async move { tls::serve_mtls_with(self.listener, router, config, &peer_limits, &metrics, stop).await }
        });
        let api = tokio::spawn({
            let metrics = self.metrics.clone();
            let stop = stopped(stop_rx.clone());
            async move { server::serve_plain(self.api_listener, self.api_router, &api_limits, &metrics, stop).await }
        });
        let upkeep = tokio::spawn(upkeep(self.engine.clone(), self.metrics.clone(), stop_rx.clone()));
        let hooks: Vec<_> = self
            .webhooks
            .into_iter()
            .map(|(hook, key)| tokio::spawn(crate::webhooks::run(self.engine.clone(), hook, key, stop_rx.clone())))
            .collect();
        let pins_changed = self.pins.map(|(_, new_client)| {
            let transport = self.transport.clone();
            Box::new(move || match new_client() {
                Ok(client) => transport.replace_client(client),
                Err(e) => tracing::error!(error = %e, "no new HTTPS client under the changed certificate pins"),
            }) as Box<dyn Fn() + Send + Sync>
        });
        let reloads = self.directory.map(|(source, configured)| {
            let (engine, metrics) = (self.engine.clone(), self.metrics.clone());
            tokio::spawn(crate::directory::run_reloads(
                engine,
                source,
                configured,
                metrics,
                pins_changed,
                stop_rx.clone(),
            ))
        });
        let worker = tokio::spawn(delivery_worker(
            self.engine.clone(),
            self.transport,
            self.role,
            self.concurrency,
            self.batch,
            stop_rx,
        ));
        shutdown.await;
        let _ = stop_tx.send(true);
        let joined = |listener: ListenerKind, r: Result<std::io::Result<()>, tokio::task::JoinError>| match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(AppError::Serve { listener, source }),
            Err(e) => Err(AppError::Serve { listener, source: std::io::Error::other(e) }),
        };
        let served = joined(ListenerKind::Peer, server.await);
        let _ = worker.await;
        let _ = upkeep.await;
        if let Some(r) = reloads {
            let _ = r.await;
        }
        for h in hooks {
            let _ = h.await;
        }
        let api_served = joined(ListenerKind::Api, api.await);
        served?;
        api_served
    }
}

/// How often the outbox gauges are read from the store.
const GAUGE_REFRESH: Duration = Duration::from_secs(5);

/// Every [`GAUGE_REFRESH`] until stopped: the outbox gauges from the store, and histogram upkeep.
async fn upkeep(engine: Engine<AnyStore>, metrics: Metrics, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match engine.store().delivery_stats().await {
            Ok(stats) => metrics.set_delivery_stats(&stats),
            Err(e) => tracing::warn!(error = %e, "reading the outbox counts for the metrics failed"),
        }
        metrics.run_upkeep();
        tokio::select! {
            _ = tokio::time::sleep(GAUGE_REFRESH) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Deliver whenever something was enqueued, and at least every 500 ms for retries. Up to `concurrency`
/// requests are in flight, each carrying up to `batch` messages for one peer; a finished request frees its
/// slot at once (no waiting for the slowest). A hub's outbox holds envelopes and receipts to relay
/// ([`Engine::relay_due`]).
async fn delivery_worker(
    engine: Engine<AnyStore>,
    transport: HttpTransport,
    role: crate::settings::NodeRole,
    concurrency: u32,
    batch: u32,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let wake = engine.outbox_signal();
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1) as usize));
    let mut in_flight = tokio::task::JoinSet::new();
    loop {
        while in_flight.try_join_next().is_some() {}
        let free = u32::try_from(slots.available_permits()).unwrap_or(u32::MAX);
        let mut claimed = 0;
        let limit = free.saturating_mul(batch.max(1));
        if free > 0 {
            match engine.claim_due(limit).await {
                Ok(due) => {
                    claimed = due.len();
                    for b in engine.batches(due) {
                        // More batches than free slots (several peers): wait for a slot, the claim is held.
                        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else { break };
                        let (engine, transport, wake) = (engine.clone(), transport.clone(), Arc::clone(&wake));
                        in_flight.spawn(async move {
                            let done = match role {
                                crate::settings::NodeRole::Node => engine.deliver(&transport, b).await,
                                crate::settings::NodeRole::Hub => engine.relay_due(&transport, b).await,
                            };
                            if let Err(e) = done {
                                tracing::error!(error = %e, "delivery failed");
                            }
                            drop(permit);
                            // A slot is free: let the worker look for more.
                            wake.notify_one();
                        });
                    }
                }
                Err(e) => tracing::error!(error = %e, "claiming deliveries failed"),
            }
        }
        if claimed > 0 && claimed as u32 == limit {
            continue;
        }
        let stopping = tokio::select! {
            _ = wake.notified() => false,
            _ = tokio::time::sleep(Duration::from_millis(500)) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopping {
            while in_flight.join_next().await.is_some() {}
            return;
        }
    }
}
