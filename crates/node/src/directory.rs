//! The node and the signed directory of responsibilities (issue 9, `docs/routing.md`).
//!
//! - **Loading**: [`open`] reads the `[directory]` source of the settings (a file, or an `https://` URL), verifies
//!   it with the directory authority's keys and installs it into a [`DirectoryHolder`]; a node with a directory it
//!   cannot load does not start. [`run_reloads`] reads the source again every `reload_s` seconds: a verified newer
//!   version replaces the held one and the engine's peers ([`crate::engine::Engine::set_peers`]) without restart;
//!   an unsigned, tampered, older or expired directory, or a source that cannot be read, is logged and counted
//!   (`sdx_directory_reloads_total{outcome=CODE}`) and the last good one is kept.
//! - **Peers**: [`peers`] — every member with its own node URL and at least one signing key, with the capabilities
//!   and message types it publishes; a `[[peers]]` entry of the settings wins for its organisation (its URL and
//!   key), and takes the directory's capabilities. An organisation reached via a hub is a peer at the hub's URL
//!   if it publishes an encryption key (its messages travel in envelopes, `crate::envelope`).
//! - **Routing**: [`route`] — who gets a case that names no assignee: the directory's candidates for its service,
//!   region and support level, in order, the first that is a peer of this node.
//!
//! Trust: the directory authority's keys are the only trust anchor for the directory's content; TLS identity of
//! peers comes from the federation CA (`keys.federation_ca`), and where the directory pins certificates
//! ([`DirectoryPins`]) a node must present one of those too.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sdx_crypto::PublicKey;
use sdx_directory::{DirectoryHolder, LoadedDirectory, Reload, Role, ServiceId, Verifier};
use sdx_model::{Ars, OrgKey, SupportLevel, Timestamp};
use sdx_store::Store;

use crate::engine::{Engine, Peer};
use crate::metrics::Metrics;
use crate::settings::DirectorySettings;

/// Longest time a fetch of the directory URL may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the directory could not be loaded (at start: the node does not start; on reload: the last good one stays).
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// An authority key file is unusable.
    #[error("directory authority key {path}: {detail}")]
    AuthorityKey {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The source could not be fetched.
    #[error("cannot fetch the directory from {url}: {detail}")]
    Fetch {
        /// The URL.
        url: String,
        /// Why.
        detail: String,
    },
    /// The directory was refused (see [`sdx_directory::Error::code`]).
    #[error("directory from {source_name}: {error}")]
    Refused {
        /// File or URL.
        source_name: String,
        /// Why.
        #[source]
        error: sdx_directory::Error,
    },
}

impl DirectoryError {
    /// A stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            DirectoryError::AuthorityKey { .. } => "authorityKey",
            DirectoryError::Fetch { .. } => "fetch",
            DirectoryError::Refused { error, .. } => error.code(),
        }
    }
}

/// Where the directory comes from, and the holder of the one in use.
#[derive(Debug, Clone)]
pub struct DirectorySource {
    settings: DirectorySettings,
    holder: Arc<DirectoryHolder>,
    client: reqwest::Client,
}

impl DirectorySource {
    /// The holder of the directory in use.
    pub fn holder(&self) -> &Arc<DirectoryHolder> {
        &self.holder
    }

    /// How often the source is read again.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.settings.reload_s)
    }

    /// Read the source once and install what it holds if it is a verified newer directory.
    ///
    /// # Errors
    /// [`DirectoryError`]; the held directory is unchanged.
    pub async fn load(&self) -> Result<Reload, DirectoryError> {
        let source_name = self.settings.source.clone();
        let bytes = if self.settings.is_url() {
            self.fetch().await?
        } else {
            sdx_directory::holder::read_file(Path::new(&self.settings.source))
                .map_err(|error| DirectoryError::Refused { source_name: source_name.clone(), error })?
        };
        self.holder.load_bytes(&bytes, Timestamp::now()).map_err(|error| DirectoryError::Refused { source_name, error })
    }

    async fn fetch(&self) -> Result<Vec<u8>, DirectoryError> {
        let url = &self.settings.source;
        let failed = |detail: String| DirectoryError::Fetch { url: url.clone(), detail };
        let mut response = self.client.get(url).send().await.map_err(|e| failed(e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("HTTP {}", response.status())));
        }
        let limit = sdx_directory::MAX_DIRECTORY_BYTES;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| failed(e.to_string()))? {
            if body.len() + chunk.len() > limit {
                return Err(failed(format!("larger than {limit} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// Read the authority keys of `settings` and load the directory once (a node without its directory does not
/// start).
///
/// # Errors
/// [`DirectoryError`].
pub async fn open(settings: &DirectorySettings) -> Result<(DirectorySource, Reload), DirectoryError> {
    let mut verifier = Verifier::new();
    for path in &settings.authority_keys {
        let key_error = |detail: String| DirectoryError::AuthorityKey { path: path.display().to_string(), detail };
        let text = std::fs::read_to_string(path).map_err(|e| key_error(e.to_string()))?;
        // A JWK, or a JWK set (an authority's current and next key).
        for key in PublicKey::from_jwk_set(&text).map_err(|e| key_error(e.to_string()))? {
            verifier = match &settings.issuer {
                Some(issuer) => verifier.trust_for(key, issuer.clone()),
                None => verifier.trust(key),
            };
        }
    }
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .build()
        .map_err(|e| DirectoryError::Fetch { url: settings.source.clone(), detail: e.to_string() })?;
    let source =
        DirectorySource { settings: settings.clone(), holder: Arc::new(DirectoryHolder::new(verifier)), client };
    let reload = source.load().await?;
    Ok((source, reload))
}

/// Every organisation's pinned certificate fingerprints in the directory held now.
fn pin_table(holder: &DirectoryHolder) -> Vec<(OrgKey, Vec<sdx_model::Sha256Hex>)> {
    holder.current().map_or_else(Vec::new, |d| {
        d.directory().organisations.iter().map(|o| (o.key.clone(), o.tls_fingerprints())).collect()
    })
}

/// The directory's `tls` entries as the certificate pins of both TLS sides ([`crate::tls::CertPins`]), read from
/// the directory held at each handshake and request: when a reload changes them, [`run_reloads`] has the node open
/// new connections to its peers, and a request on an older inbound connection whose certificate is no longer
/// pinned is refused ([`crate::tls::require_pinned`]).
#[derive(Debug)]
pub struct DirectoryPins(pub Arc<DirectoryHolder>);

impl crate::tls::CertPins for DirectoryPins {
    fn admits(&self, org: &OrgKey, cert_sha256_hex: &str) -> bool {
        let dir = self.0.current();
        dir.as_deref().and_then(|d| d.organisation(org)).is_none_or(|o| o.tls.admits(cert_sha256_hex))
    }
}

/// The peers of node `me`: the `configured` ones (from the settings; they keep their URL and key and take the
/// capabilities and message types the directory publishes for them), then every other member of `dir` that has
/// its own node URL and at least one signing key.
pub fn peers(dir: Option<&LoadedDirectory>, me: &OrgKey, configured: &[Peer]) -> Vec<Peer> {
    let Some(dir) = dir else { return configured.to_vec() };
    let version = dir.version();
    let mut out: Vec<Peer> = configured
        .iter()
        .map(|p| {
            let mut p = p.clone();
            if let Some(o) = dir.organisation(&p.org) {
                p.capabilities = o.capabilities.clone();
                p.message_types = o.message_types.clone();
                p.encryption_key = o.encryption_keys.first().map(|k| k.public_key().clone());
            }
            p
        })
        .collect();
    for o in &dir.directory().organisations {
        if &o.key == me || !o.has_role(Role::Member) || configured.iter().any(|p| p.org == o.key) {
            continue;
        }
        // Reached directly, or through a hub (then only with a key to encrypt to, and never through ourselves).
        let Some(reach) = dir.peer(&o.key) else { continue };
        let via_hub = reach.via_hub.map(|h| h.key.clone());
        let encryption_key = o.encryption_keys.first().map(|k| k.public_key().clone());
        if via_hub.as_ref().is_some_and(|h| h == me) || (via_hub.is_some() && encryption_key.is_none()) {
            continue;
        }
        let mut keys = o.signing_keys.iter().map(|k| k.public_key().clone());
        let Some(key) = keys.next() else { continue };
        out.push(Peer {
            org: o.key.clone(),
            url: base_url(reach.url.as_str()),
            key,
            other_keys: keys.collect(),
            capabilities: o.capabilities.clone(),
            message_types: o.message_types.clone(),
            directory_version: Some(version),
            via_hub,
            encryption_key,
        });
    }
    out
}

/// The node's base URL from a directory endpoint: the peer paths (`/sdx/v1/…`) are the node's own, so an
/// endpoint written with them (`https://sdx.example/sdx/v1`) means the same node as one without.
fn base_url(endpoint: &str) -> String {
    let e = endpoint.trim_end_matches('/');
    e.strip_suffix("/sdx/v1").unwrap_or(e).to_string()
}

/// Record a load's outcome in the metrics and the log.
fn report(metrics: &Metrics, holder: &DirectoryHolder, outcome: &Result<Reload, DirectoryError>) {
    let held = holder.current().map(|d| (d.version(), d.directory().expires_at));
    match outcome {
        Ok(Reload::Installed { previous, version }) => {
            tracing::info!(version, previous = ?previous, "directory installed");
            metrics.directory_loaded("installed", held);
        }
        Ok(Reload::Unchanged { version }) => {
            tracing::debug!(version, "directory unchanged");
            metrics.directory_loaded("unchanged", held);
        }
        Err(e) => {
            tracing::warn!(code = e.code(), error = %e, kept = ?held.map(|h| h.0), "directory refused; the last good one is kept");
            metrics.directory_loaded(e.code(), held);
        }
    }
}

/// Install the peers of the directory held now into `engine` (after a load that installed a new version).
pub fn apply<S: Store>(engine: &Engine<S>, source: &DirectorySource, configured: &[Peer]) {
    let dir = source.holder.current();
    engine.set_peers(peers(dir.as_deref(), engine.org(), configured));
}

/// Record the load made at start (see [`open`]).
pub fn report_start(metrics: &Metrics, source: &DirectorySource, reload: Reload) {
    report(metrics, &source.holder, &Ok(reload));
}

/// Every [`DirectorySource::interval`] until stopped: load the directory again and, if a newer one was
/// installed, replace the engine's peers. Warns while the held directory has expired (it stays in use: routing
/// by an expired directory is better than none; the operator must publish a new one).
pub async fn run_reloads<S: Store>(
    engine: Engine<S>,
    source: DirectorySource,
    configured: Vec<Peer>,
    metrics: Metrics,
    pins_changed: Option<Box<dyn Fn() + Send + Sync>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut pins = pin_table(&source.holder);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(source.interval()) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let outcome = source.load().await;
        // Peers and connections first, then the metrics: a version the metrics show is in use.
        if matches!(outcome, Ok(Reload::Installed { .. })) {
            apply(&engine, &source, &configured);
            let now = pin_table(&source.holder);
            if now != pins {
                tracing::info!("the directory's certificate pins changed: new connections to peers");
                if let Some(f) = &pins_changed {
                    f();
                }
                pins = now;
            }
        }
        report(&metrics, &source.holder, &outcome);
        if let Some(d) = source.holder.current()
            && d.is_expired(Timestamp::now())
        {
            tracing::warn!(version = d.version(), expired_at = %d.directory().expires_at,
                "the directory in use has expired; publish a new one");
        }
    }
}

/// Where a case that names no assignee goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The organisation chosen.
    pub org: OrgKey,
    /// Its name in the directory.
    pub name: String,
    /// Why: the directory's explanation, and the candidates passed over.
    pub reason: String,
    /// The directory version that decided.
    pub directory_version: u64,
}

/// Why a case could not be routed by the directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The node has no directory: a case must name its assignee.
    #[error("this node has no directory of responsibilities: name the case's assignee")]
    NoDirectory,
    /// The case names no service (LeiKa key or OZG id) to route by.
    #[error("the case names no service to route by (category.service.leikaKey or ozgId): name its assignee")]
    NoService,
    /// The case names no region to route by.
    #[error("the case names no region (ARS) to route by: name its assignee")]
    NoRegion,
    /// The directory has nobody for it.
    #[error("the directory (version {version}) has nobody for this case: {detail}")]
    Nobody {
        /// The directory version.
        version: u64,
        /// Its explanation.
        detail: String,
    },
    /// Nobody the directory names can be reached from this node.
    #[error("none of the directory's candidates can be reached from this node: {detail}")]
    Unreachable {
        /// The candidates and why each was passed over.
        detail: String,
    },
}

/// Who gets `case` at `level`: [`route`] by its service (LeiKa key, else OZG id) and region.
///
/// # Errors
/// [`RouteError`].
pub fn route_case<S: Store>(
    engine: &Engine<S>,
    case: &sdx_model::Case,
    level: SupportLevel,
    exclude: &[OrgKey],
) -> Result<Routed, RouteError> {
    let service = case.category.service.as_ref().and_then(ServiceId::of);
    route(engine, service, case.region.as_ref(), level, exclude)
}

/// Whether this organisation is responsible for `case` by the directory (its service, region and support
/// level): `None` when the directory cannot say (no directory, no service or region in the case, nobody named),
/// `Some(Ok(()))` when it names this organisation among the candidates, else `Some(Err((why, first)))` with the
/// directory's explanation and the organisation it names first.
pub fn responsible<S: Store>(engine: &Engine<S>, case: &sdx_model::Case) -> Option<Result<(), (String, OrgKey)>> {
    let dir = engine.directory()?.current()?;
    let service = case.category.service.as_ref().and_then(ServiceId::of)?;
    let region = case.region.as_ref()?;
    let resolution = dir.resolve(&service, region, case.support_level).ok()?;
    if resolution.candidates().any(|c| &c.organisation.key == engine.org()) {
        return Some(Ok(()));
    }
    let first = resolution.candidates().next()?.organisation.key.clone();
    Some(Err((format!("directory version {}: {resolution}", dir.version()), first)))
}

/// Who gets a case for `service` in `region` at `level`: the directory's candidates in order (the responsible
/// organisation first), the first that is a peer of this node and accepts forwards, skipping `exclude` (those
/// that refused the case already).
///
/// # Errors
/// [`RouteError`].
pub fn route<S: Store>(
    engine: &Engine<S>,
    service: Option<ServiceId>,
    region: Option<&Ars>,
    level: SupportLevel,
    exclude: &[OrgKey],
) -> Result<Routed, RouteError> {
    let holder = engine.directory().ok_or(RouteError::NoDirectory)?;
    let dir = holder.current().ok_or(RouteError::NoDirectory)?;
    let service = service.ok_or(RouteError::NoService)?;
    let region = region.ok_or(RouteError::NoRegion)?;
    let resolution = dir
        .resolve(&service, region, level)
        .map_err(|e| RouteError::Nobody { version: dir.version(), detail: e.to_string() })?;
    let mut passed = Vec::new();
    for c in resolution.candidates() {
        let org = &c.organisation.key;
        let why_not = if org == engine.org() {
            Some("this node itself")
        } else if exclude.contains(org) {
            Some("refused the case already")
        } else if !c.organisation.accepts(sdx_model::MessageType::Forward) {
            Some("accepts no forwards")
        } else if !engine.is_peer(org) {
            Some("not reachable from this node (no node URL and key, or via a hub)")
        } else {
            None
        };
        match why_not {
            Some(w) => passed.push(format!("{org} {w}")),
            None => {
                let mut reason = resolution.to_string();
                if !passed.is_empty() {
                    reason.push_str(&format!("; passed over: {}", passed.join(", ")));
                }
                return Ok(Routed {
                    org: org.clone(),
                    name: c.organisation.name.clone(),
                    reason,
                    directory_version: dir.version(),
                });
            }
        }
    }
    Err(RouteError::Unreachable { detail: passed.join(", ") })
}
