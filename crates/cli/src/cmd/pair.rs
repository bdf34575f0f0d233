//! Two nodes — MiLa and BeLa — as real servers on loopback with mutual TLS from a temporary federation PKI,
//! each with its own database: what `sdx demo` and `sdx bench forward` run on.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sdx_crypto::{Alg, PrivateKey};
use sdx_model::OrgKey;
use sdx_model::sample::{BELA, MILA};
use sdx_node::app::App;
use sdx_node::engine::Engine;
use sdx_node::pki::Ca;
use sdx_node::settings::Settings;
use sdx_store::AnyStore;

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Write PKI, keys and the settings file of one node; returns the settings path.
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
) -> Result<PathBuf> {
    let d = dir.join(name);
    std::fs::create_dir_all(&d)?;
    let cert = ca.issue_node(org, &[])?;
    std::fs::write(d.join("tls.crt"), cert.cert_pem())?;
    std::fs::write(d.join("tls.key"), cert.key_pem())?;
    std::fs::write(d.join("signing.pem"), key.to_pkcs8_pem())?;
    std::fs::write(dir.join(format!("{name}.jwk")), key.public_key(Alg::Es256)?.to_jwk_string())?;
    let peer_name = if name == "mila" { "bela" } else { "mila" };
    let schema = storage.1.map(|s| format!("schema = \"{s}\"\n")).unwrap_or_default();
    let toml = format!(
        "[node]\norg = \"{org}\"\nlisten = \"127.0.0.1:{port}\"\n\
         [keys]\nsigning_key = \"signing.pem\"\ntls_cert = \"tls.crt\"\ntls_key = \"tls.key\"\nfederation_ca = \"../ca.pem\"\n\
         [storage]\nurl = \"{}\"\n{schema}\
         [api]\nlisten = \"127.0.0.1:0\"\nclients = [{{ name = \"ticket-system\", token_sha256 = \"{}\" }}]\n\
         [delivery]\nbackoff_initial_ms = 100\nbackoff_max_ms = 2000\ndead_after_s = 3600\nconcurrency = 32\n\
         [[peers]]\norg = \"{}\"\nurl = \"https://localhost:{}\"\nsigning_key = \"../{peer_name}.jwk\"\n",
        storage.0,
        sdx_codec::validate::sha256(api_token.as_bytes()),
        peer.0,
        peer.1
    );
    let path = d.join("node.toml");
    std::fs::write(&path, toml)?;
    Ok(path)
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
        std::fs::write(dir.join("ca.pem"), ca.cert_pem())?;
        let (m_key, b_key) = (PrivateKey::generate(Alg::Es256)?, PrivateKey::generate(Alg::Es256)?);
        let (m_port, b_port) = (free_port()?, free_port()?);
        let storage = |name: &str| -> (String, Option<String>) {
            match database_url {
                Some(url) => (url.to_string(), Some(format!("{schema_prefix}_{name}"))),
                None => (format!("sqlite://{}?mode=rwc", dir.join(format!("{name}.db")).display()), None),
            }
        };
        let (m_store, b_store) = (storage("mila"), storage("bela"));
        let api_token = format!("sdx-demo-{}", sdx_model::ItemId::new_random());
        let m_cfg = node_files(
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
        let b_cfg = node_files(
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
        let m_app = App::build(Settings::load(Some(&m_cfg))?).await.context("MiLa node")?;
        let b_app = App::build(Settings::load(Some(&b_cfg))?).await.context("BeLa node")?;
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
