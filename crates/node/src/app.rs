//! Start-up: [`App::build`] turns [`Settings`] into a running node — store opened and migrated, keys and
//! certificates loaded, peer endpoint bound (port 0 allowed; [`App::peer_addr`] tells the port) — and
//! [`App::run_until_stopped`] serves peers over mutual TLS and runs the delivery worker until the shutdown
//! future completes, then stops accepting, lets requests in flight finish and returns. The local API (plain
//! HTTP, bearer tokens) is served on its own listener ([`App::api_addr`]).

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sdx_crypto::{PrivateKey, PublicKey};
use sdx_store::{AnyStore, open_any};

use crate::engine::{Engine, EngineError, Peer};
use crate::local_api;
use crate::peer_api::{self, HttpTransport};
use crate::pki::NodeCert;
use crate::protocol::Identity;
use crate::settings::Settings;
use crate::tls;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
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
    /// The store could not be opened.
    #[error("storage: {0}")]
    Store(#[from] sdx_store::Error),
    /// The peer endpoint could not be bound or served.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    /// TLS set-up failed.
    #[error("TLS: {0}")]
    Tls(String),
}

fn read(path: &Path) -> Result<String, AppError> {
    std::fs::read_to_string(path).map_err(|source| AppError::Read { path: path.display().to_string(), source })
}

fn material(what: &'static str, path: &Path, detail: impl std::fmt::Display) -> AppError {
    AppError::Material { what, path: path.display().to_string(), detail: detail.to_string() }
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
}

impl App {
    /// Build the node from its settings.
    pub async fn build(settings: Settings) -> Result<App, AppError> {
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
        let mut peers = Vec::new();
        for p in &settings.peers {
            let key = PublicKey::from_jwk(&read(&p.signing_key)?)
                .map_err(|e| material("peer signing key (JWK)", &p.signing_key, e))?;
            peers.push(Peer { org: p.org.clone(), url: p.url.clone(), key });
        }
        let server_config = tls::server_config(&cert, &ca_pem).map_err(|e| AppError::Tls(e.to_string()))?;
        let client = tls::http_client(&cert, &ca_pem).map_err(|e| AppError::Tls(e.to_string()))?;
        let store = open_any(&settings.storage.url, settings.storage.schema.as_deref()).await?;
        let identity = Identity { org: settings.node.org.clone(), name: settings.node.name.clone(), signing_key };
        let concurrency = u32::try_from(settings.delivery.concurrency).unwrap_or(u32::MAX);
        let batch = u32::try_from(settings.delivery.batch).unwrap_or(1);
        let engine = Engine::new(identity, store, peers, settings.delivery.clone());
        let released = match engine.release_leases().await {
            Ok(n) => n,
            Err(EngineError::Store(e)) => return Err(AppError::Store(e)),
            Err(e) => return Err(AppError::Store(sdx_store::Error::Invalid(e.to_string()))),
        };
        if released > 0 {
            tracing::info!(released, "released delivery leases left by a previous process");
        }
        let listener = TcpListener::bind(settings.node.listen)?;
        let api_listener = TcpListener::bind(settings.api.listen)?;
        api_listener.set_nonblocking(true)?;
        let api_router = local_api::router(engine.clone(), &settings.api.clients);
        Ok(App {
            engine,
            listener,
            api_listener,
            api_router,
            server_config,
            transport: HttpTransport::new(client),
            concurrency,
            batch,
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

    /// Serve peers and deliver the outbox until `shutdown` completes.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), AppError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let server =
            tokio::spawn(tls::serve_mtls(self.listener, peer_api::router(self.engine.clone()), self.server_config, {
                let mut rx = stop_rx.clone();
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                }
            }));
        let api_listener = tokio::net::TcpListener::from_std(self.api_listener)?;
        let api = tokio::spawn({
            let mut rx = stop_rx.clone();
            axum::serve(api_listener, self.api_router)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .into_future()
        });
        let worker =
            tokio::spawn(delivery_worker(self.engine.clone(), self.transport, self.concurrency, self.batch, stop_rx));
        shutdown.await;
        let _ = stop_tx.send(true);
        let served = server.await.map_err(|e| AppError::Io(std::io::Error::other(e)))?;
        let _ = worker.await;
        let api_served = api.await.map_err(|e| AppError::Io(std::io::Error::other(e)))?;
        served?;
        Ok(api_served?)
    }
}

/// Deliver whenever something was enqueued, and at least every 500 ms for retries. Up to `concurrency`
/// requests are in flight, each carrying up to `batch` messages for one peer; a finished request frees its
/// slot at once (no waiting for the slowest).
async fn delivery_worker(
    engine: Engine<AnyStore>,
    transport: HttpTransport,
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
                            if let Err(e) = engine.deliver(&transport, b).await {
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
