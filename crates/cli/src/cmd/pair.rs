//! Two nodes — MiLa and BeLa — as real servers on loopback with mutual TLS from a temporary federation PKI,
//! each with its own database: what `sdx demo` and `sdx bench forward` run on. Their settings are built as
//! typed [`Settings`] (as `sdx init` builds them), written to `node.toml` for people and `sdx serve`, and handed
//! to [`App::build`] directly — environment variables do not change them.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sdx_crypto::{Alg, PrivateKey};
use sdx_model::OrgKey;
use sdx_model::sample::{BELA, MILA};
use sdx_node::app::App;
use sdx_node::engine::Engine;
use sdx_node::pki::{self, Ca};
use sdx_node::settings::{ApiClient, DeliverySettings, PeerSettings, Settings, StorageSettings};
use sdx_store::AnyStore;

use crate::cmd::init;

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Write the directory `dir/<name>` of one node as `sdx init` lays it out (keys, certificate, the federation CA's
/// certificate, `node.toml` with relative paths; the database `dir/<name>.db` on SQLite) and return its settings,
/// resolved and checked, for [`App::build`]. Files of an earlier run in `dir` are replaced.
#[allow(clippy::too_many_arguments)]
pub fn node_files(
    dir: &Path,
    name: &str,
    org: &OrgKey,
    port: u16,
    ca: &Ca,
    key: &PrivateKey,
    peer: (&str, u16),
    storage: (&str, Option<&str>),
    api_token: &str,
) -> Result<Settings> {
    let d = node_material(dir, name, org, ca, key)?;
    let peer_name = if name == "mila" { "bela" } else { "mila" };
    let storage = StorageSettings { url: storage.0.to_string(), schema: storage.1.map(str::to_string) };
    let mut settings = demo_settings(org.clone(), None, port, storage, api_token);
    settings.peers.push(PeerSettings {
        org: OrgKey::parse(peer.0)?,
        name: None,
        url: format!("https://localhost:{}", peer.1),
        signing_key: PathBuf::from("..").join(peer_name).join(init::SIGNING_JWK_FILE),
    });
    let header = format!("Settings of the {name} node of `sdx demo` / `sdx bench` (replaced on every run).");
    init::write_settings(&d.join(init::SETTINGS_FILE), &settings, &header, true)?;
    settings.resolve_paths(&std::path::absolute(&d)?)?;
    settings.check()?;
    Ok(settings)
}

/// The settings of a demo or benchmark node, as `sdx init` builds them: the peer endpoint on loopback `port`, the
/// local API on a free loopback port, one API client (`ticket-system`) with `api_token`, quick retries.
pub fn demo_settings(
    org: OrgKey,
    name: Option<String>,
    port: u16,
    storage: StorageSettings,
    api_token: &str,
) -> Settings {
    let client = ApiClient::all_cases("ticket-system", sdx_codec::validate::sha256(api_token.as_bytes()).to_string());
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let mut settings = init::settings(org, name, loopback(port), loopback(0), storage, vec![client]);
    settings.delivery =
        DeliverySettings { backoff_initial_ms: 100, backoff_max_ms: 2000, dead_after_s: 3600, ..settings.delivery };
    settings
}

/// Create `dir/<name>` and write a node's key material into it as `sdx init` lays it out: TLS certificate and key
/// issued by `ca`, the CA's certificate, the signing key and its public JWK. Returns the node's directory.
pub fn node_material(dir: &Path, name: &str, org: &OrgKey, ca: &Ca, key: &PrivateKey) -> Result<PathBuf> {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    let cert = ca.issue_node(org, &[])?;
    let write = |file: &str, contents: &[u8], secret: bool| init::write_file(&d.join(file), contents, secret, true);
    write(pki::NODE_CERT_FILE, cert.cert_pem().as_bytes(), false)?;
    write(pki::NODE_KEY_FILE, cert.key_pem().as_bytes(), true)?;
    write(pki::CA_CERT_FILE, ca.cert_pem().as_bytes(), false)?;
    write(init::SIGNING_KEY_FILE, key.to_pkcs8_pem().as_bytes(), true)?;
    write(init::SIGNING_JWK_FILE, key.public_key(Alg::Es256)?.to_jwk_string().as_bytes(), false)?;
    Ok(d)
}

/// A fresh directory under the system's temporary directory, named `<prefix>-<uuid>`.
pub fn scratch_dir(prefix: &str) -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("{prefix}-{}", sdx_model::ItemId::new_random()));
    std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    Ok(d)
}

/// Two running nodes.
pub struct Pair {
    /// MiLa's engine.
    pub mila: Engine<AnyStore>,
    /// BeLa's engine.
    pub bela: Engine<AnyStore>,
    /// MiLa's peer port.
    pub mila_port: u16,
    /// BeLa's peer port.
    pub bela_port: u16,
    /// The federation CA (to issue further certificates, e.g. for a benchmark client).
    pub ca: Ca,
    /// Base URL of MiLa's local API (`http://127.0.0.1:…/api/v1`).
    pub mila_api: String,
    /// Base URL of BeLa's local API.
    pub bela_api: String,
    /// The bearer token both local APIs accept (client `ticket-system`).
    pub api_token: String,
    stop: tokio::sync::watch::Sender<bool>,
    runs: Vec<tokio::task::JoinHandle<Result<(), sdx_node::app::AppError>>>,
}

impl Pair {
    /// Write PKI, keys and settings into `dir` and start both nodes. With a PostgreSQL URL, each node gets the
    /// schema `<schema_prefix>_mila` / `_bela`; otherwise a SQLite file in `dir`.
    pub async fn start(dir: &Path, database_url: Option<&str>, schema_prefix: &str) -> Result<Pair> {
        // The ports are picked free, then bound by the nodes: another process may take one in between. Then
        // pick again.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start(dir, database_url, schema_prefix).await {
                Err(e) if attempt < 5 && format!("{e:#}").contains("Address already in use") => continue,
                other => return other,
            }
        }
    }

    async fn try_start(dir: &Path, database_url: Option<&str>, schema_prefix: &str) -> Result<Pair> {
        let (m_org, b_org) = (OrgKey::parse(MILA)?, OrgKey::parse(BELA)?);
        let ca = Ca::generate("SDX demo federation")?;
        let (m_key, b_key) = (PrivateKey::generate(Alg::Es256)?, PrivateKey::generate(Alg::Es256)?);
        // Two picks of a free port can return the same port (it is free again after the first pick).
        let m_port = free_port()?;
        let b_port = loop {
            let p = free_port()?;
            if p != m_port {
                break p;
            }
        };
        // SQLite: dir/<name>.db, relative to dir/<name>/node.toml.
        let storage = |name: &str| -> (String, Option<String>) {
            match database_url {
                Some(url) => (url.to_string(), Some(format!("{schema_prefix}_{name}"))),
                None => (format!("sqlite://../{name}.db?mode=rwc"), None),
            }
        };
        let (m_store, b_store) = (storage("mila"), storage("bela"));
        let api_token = format!("sdx-demo-{}", sdx_model::ItemId::new_random());
        let m_settings = node_files(
            dir,
            "mila",
            &m_org,
            m_port,
            &ca,
            &m_key,
            (BELA, b_port),
            (&m_store.0, m_store.1.as_deref()),
            &api_token,
        )?;
        let b_settings = node_files(
            dir,
            "bela",
            &b_org,
            b_port,
            &ca,
            &b_key,
            (MILA, m_port),
            (&b_store.0, b_store.1.as_deref()),
            &api_token,
        )?;
        let m_app = App::build(m_settings).await.context("MiLa node")?;
        let b_app = App::build(b_settings).await.context("BeLa node")?;
        let (mila, bela) = (m_app.engine().clone(), b_app.engine().clone());
        let (mila_api, bela_api) =
            (format!("http://{}/api/v1", m_app.api_addr()?), format!("http://{}/api/v1", b_app.api_addr()?));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stop_fut = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let runs = vec![
            tokio::spawn(m_app.run_until_stopped(stop_fut(stopped.clone()))),
            tokio::spawn(b_app.run_until_stopped(stop_fut(stopped))),
        ];
        Ok(Pair { mila, bela, mila_port: m_port, bela_port: b_port, ca, mila_api, bela_api, api_token, stop, runs })
    }

    /// Stop both nodes (requests in flight finish first).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for r in self.runs {
            let _ = r.await;
        }
    }
}
