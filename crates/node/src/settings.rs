//! Typed settings of a node, layered: defaults → TOML file → `SDX_…` environment variables
//! (`SDX_NODE__ORG=psw:01000115`, nested keys separated by `__`). Secrets (API tokens) are stored as SHA-256
//! hashes and never printed; `Debug` of [`Settings`] shows no secret.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use sdx_model::OrgKey;

/// Everything a node needs to start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// This organisation.
    pub node: NodeSettings,
    /// Keys and certificates.
    pub keys: KeySettings,
    /// Storage.
    pub storage: StorageSettings,
    /// Partners this node exchanges cases with (besides those of the directory; these win for their
    /// organisation).
    #[serde(default)]
    pub peers: Vec<PeerSettings>,
    /// The signed directory of responsibilities: peers and routing come from it (see [`crate::directory`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectorySettings>,
    /// Delivery of outgoing messages.
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// Local API for the organisation's own ticket system and operators.
    #[serde(default)]
    pub api: ApiSettings,
    /// Timeouts and connection bounds of both servers.
    #[serde(default)]
    pub limits: LimitSettings,
    /// Ticket-system connectors `sdx serve` runs with this node: one connector file each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connectors: Vec<ConnectorRef>,
    /// The change feed pushed to URLs, signed (see [`crate::webhooks`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<crate::webhooks::WebhookSettings>,
}

/// The organisation this node speaks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSettings {
    /// Organisation key (DVDV style), e.g. `psw:01000115`.
    pub org: OrgKey,
    /// Organisation name.
    #[serde(default)]
    pub name: Option<String>,
    /// Address of the peer endpoint (mutual TLS); port 0 picks a free port.
    #[serde(default = "default_peer_listen")]
    pub listen: SocketAddr,
    /// `node` (default: exchanges cases) or `hub` (relays members' enveloped messages, reads none of them; see
    /// [`crate::hub`]).
    #[serde(default)]
    pub role: NodeRole,
}

/// What a node is in the federation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Exchanges cases with its peers (directly or through a hub).
    #[default]
    Node,
    /// Relays enveloped messages between members by their route; has no cases of its own.
    Hub,
}

/// Key material, as file paths (relative paths are relative to the settings file).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// PKCS#8 PEM key that signs messages and receipts (EC P-256 → ES256, RSA → PS512).
    pub signing_key: PathBuf,
    /// This node's TLS certificate (PEM), issued by the federation CA, with `urn:sdx:org:<key>`.
    pub tls_cert: PathBuf,
    /// Its private key (PKCS#8 PEM).
    pub tls_key: PathBuf,
    /// The federation CA certificate (PEM): the only trust anchor for peers.
    pub federation_ca: PathBuf,
    /// RSA private key (PKCS#8 PEM, RSA-OAEP-256, ≥ 3072 bits) that decrypts messages which reach this node through
    /// a hub; its public key is published in the directory (`encryptionKeys`). Optional for nodes not behind a hub.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<PathBuf>,
}

/// Where the node keeps its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// `sqlite://path/node.db?mode=rwc` (default, embedded; a relative path is relative to the settings file) or
    /// `postgres://user@host/db`.
    pub url: String,
    /// PostgreSQL schema of this node (several nodes may share one database).
    #[serde(default)]
    pub schema: Option<String>,
}

/// A partner node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSettings {
    /// Its organisation key (must match its TLS certificate and the author of its messages).
    pub org: OrgKey,
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
    /// Base URL of its peer endpoint, e.g. `https://bela.example:8443`.
    pub url: String,
    /// Its public signing key: a JWK file, or a JWK set of the keys it may sign with (its old and new key during a
    /// rollover; a message is checked with the key its `kid` names). Each `kid` must be its key's thumbprint.
    pub signing_key: PathBuf,
}

/// Where the directory of responsibilities comes from and who may sign it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectorySettings {
    /// A file (relative to the settings file) or an `https://` (or, on loopback and in tests, `http://`) URL of
    /// the signed directory (JWS). The signature, not the transport, makes it trustworthy.
    pub source: String,
    /// The directory authority's public signing keys (JWK files): a directory signed by none of them is refused.
    pub authority_keys: Vec<PathBuf>,
    /// If set, the directory's `issuer` must be this organisation key.
    #[serde(default)]
    pub issuer: Option<OrgKey>,
    /// How often the source is read again, in seconds (a newer version replaces the held one without restart).
    #[serde(default = "default_directory_reload_s")]
    pub reload_s: u64,
    /// Reject a new case as not responsible when the directory names other organisations for its service,
    /// region and support level (its originator's node then routes it to the next candidate). Off by default:
    /// cases sent under agreements outside the directory are taken.
    #[serde(default)]
    pub check_responsibility: bool,
}

fn default_directory_reload_s() -> u64 {
    300
}

impl DirectorySettings {
    /// Whether `source` is a URL (else a file path).
    pub fn is_url(&self) -> bool {
        self.source.starts_with("https://") || self.source.starts_with("http://")
    }
}

/// Retry policy of the delivery worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    /// First retry delay, in milliseconds.
    pub backoff_initial_ms: u64,
    /// Longest retry delay, in milliseconds.
    pub backoff_max_ms: u64,
    /// After this many seconds without success an entry becomes a dead letter.
    pub dead_after_s: u64,
    /// After this many failed attempts an entry becomes a dead letter (whichever comes first: this or
    /// `dead_after_s`). Only transient failures are retried at all.
    pub max_attempts: u32,
    /// How many requests are in flight at once.
    pub concurrency: usize,
    /// Most messages sent to one peer in one request (1 = no batching; at most 64). Messages due for the same
    /// peer at the same time share one request, one transaction at the receiver and one here.
    pub batch: usize,
    /// A message that a hub took into its outbox (it answered 202) waits this many seconds for the receipt the
    /// hub pushes, then goes to the hub again (which answers with the receipt it holds, or 202 again).
    pub hub_receipt_wait_s: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            backoff_initial_ms: 1_000,
            backoff_max_ms: 300_000,
            dead_after_s: 86_400,
            max_attempts: 100,
            concurrency: 32,
            batch: 32,
            hub_receipt_wait_s: 300,
        }
    }
}

impl DeliverySettings {
    /// Delay before attempt `attempt` (1-based), before jitter: initial · 2^(attempt−1), capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(32);
        let ms = self.backoff_initial_ms.saturating_mul(1u64 << exp).min(self.backoff_max_ms);
        Duration::from_millis(ms)
    }
}

/// The local API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Address of the local API (plain HTTP; keep it on loopback or behind a TLS proxy).
    pub listen: SocketAddr,
    /// Clients allowed to call it.
    pub clients: Vec<ApiClient>,
    /// Longest a change feed request waits for an event, in seconds (at most 60, the feed's `wait` bound; a
    /// request asking for longer gets an empty answer after this).
    #[serde(default = "default_feed_max_wait")]
    pub feed_max_wait_s: u64,
}

fn default_feed_max_wait() -> u64 {
    crate::connector_api::MAX_FEED_WAIT_S
}

/// A connector `sdx serve` runs (see `docs/connectors.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorRef {
    /// The connector file (relative to the settings file).
    pub file: PathBuf,
    /// Which cases the connector's ticket system sees and changes: `all` (default) or `own`, as for
    /// `[[api.clients]]` (the connector is the API client `connector NAME`); with several ticket systems behind
    /// one node, `own` and `services` / `default_owner` give each case to one of them.
    #[serde(default)]
    pub cases: CaseScope,
    /// Incoming cases for these services (LeiKa keys or OZG ids) go to this connector's system.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Incoming cases no client's `services` names go to this connector's system.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default_owner: bool,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            clients: Vec::new(),
            feed_max_wait_s: default_feed_max_wait(),
        }
    }
}

/// One API client and the SHA-256 (hex) of its bearer token. The token itself is never stored.
///
/// An organisation with several ticket systems gives each its own client with `cases = "own"`: each case is then
/// owned by one of them (see [`crate::clients`]).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiClient {
    /// Name, for logs and as the owner of cases: 1 to 64 of `A-Z a-z 0-9 - _ .`, unique.
    pub name: String,
    /// SHA-256 of the token, 64 lowercase hex digits.
    pub token_sha256: String,
    /// Which cases the client sees and changes: `all` (the default: operators, or the one ticket system of the
    /// organisation) or `own` (one of several ticket systems: the cases it created, the incoming ones its
    /// `services` or `default_owner` give it, and those an operator gave it).
    #[serde(default)]
    pub cases: CaseScope,
    /// Incoming cases for these services (LeiKa keys or OZG ids) are owned by this client (`cases = "own"`
    /// only; each service at one client).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Incoming cases that no client's `services` names are owned by this client (`cases = "own"` only; at most
    /// one client). Without one such client they stay without owner until an operator gives them one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default_owner: bool,
}

/// Which cases an API client sees and changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseScope {
    /// Every case (operators; the one ticket system of an organisation).
    #[default]
    All,
    /// The cases this client owns.
    Own,
}

impl ApiClient {
    /// A client that sees every case.
    pub fn all_cases(name: impl Into<String>, token_sha256: impl Into<String>) -> ApiClient {
        ApiClient {
            name: name.into(),
            token_sha256: token_sha256.into(),
            cases: CaseScope::All,
            services: Vec::new(),
            default_owner: false,
        }
    }
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("name", &self.name)
            .field("token_sha256", &"<redacted>")
            .field("cases", &self.cases)
            .field("services", &self.services)
            .field("default_owner", &self.default_owner)
            .finish()
    }
}

/// Timeouts and connection bounds of the peer endpoint and the local API (see `crate::server` for what each
/// one covers). Times in milliseconds; every value must be at least 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Peer endpoint: time for the TLS handshake.
    pub handshake_timeout_ms: u64,
    /// Time for a request's line and headers, counted from when the connection waits for it (after the TLS
    /// handshake, or after the previous answer on a kept-alive HTTP/1.1 connection).
    pub header_read_timeout_ms: u64,
    /// Longest pause between two pieces of a request body.
    pub body_read_timeout_ms: u64,
    /// A connection without a request in flight for this long is closed (HTTP/2 with GOAWAY).
    pub idle_timeout_ms: u64,
    /// HTTP/2: ping an idle connection after this long …
    pub http2_keep_alive_interval_ms: u64,
    /// … and close it if the ping is not answered within this.
    pub http2_keep_alive_timeout_ms: u64,
    /// HTTP/2: requests in flight on one connection.
    pub http2_max_concurrent_streams: u32,
    /// Peer endpoint: a whole request, from its head to the answer.
    pub peer_request_timeout_ms: u64,
    /// Peer endpoint: open connections in total.
    pub peer_max_connections: usize,
    /// Peer endpoint: open connections from one IP address (counted before the handshake).
    pub peer_max_connections_per_ip: usize,
    /// Peer endpoint: open connections of one organisation (counted after the handshake).
    pub peer_max_connections_per_org: usize,
    /// Local API: a whole request, from its head to the answer (`waitForReceipt` allows up to 60 s).
    pub api_request_timeout_ms: u64,
    /// Local API: open connections in total.
    pub api_max_connections: usize,
    /// Local API: open connections from one IP address.
    pub api_max_connections_per_ip: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            handshake_timeout_ms: 10_000,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            http2_keep_alive_interval_ms: 30_000,
            http2_keep_alive_timeout_ms: 10_000,
            http2_max_concurrent_streams: 256,
            peer_request_timeout_ms: 30_000,
            peer_max_connections: 512,
            peer_max_connections_per_ip: 256,
            peer_max_connections_per_org: 128,
            api_request_timeout_ms: 90_000,
            api_max_connections: 512,
            api_max_connections_per_ip: 512,
        }
    }
}

impl LimitSettings {
    fn check(&self) -> Result<(), SettingsError> {
        let l = self;
        let zero = [
            ("handshake_timeout_ms", l.handshake_timeout_ms),
            ("header_read_timeout_ms", l.header_read_timeout_ms),
            ("body_read_timeout_ms", l.body_read_timeout_ms),
            ("idle_timeout_ms", l.idle_timeout_ms),
            ("http2_keep_alive_interval_ms", l.http2_keep_alive_interval_ms),
            ("http2_keep_alive_timeout_ms", l.http2_keep_alive_timeout_ms),
            ("http2_max_concurrent_streams", u64::from(l.http2_max_concurrent_streams)),
            ("peer_request_timeout_ms", l.peer_request_timeout_ms),
            ("peer_max_connections", l.peer_max_connections as u64),
            ("peer_max_connections_per_ip", l.peer_max_connections_per_ip as u64),
            ("peer_max_connections_per_org", l.peer_max_connections_per_org as u64),
            ("api_request_timeout_ms", l.api_request_timeout_ms),
            ("api_max_connections", l.api_max_connections as u64),
            ("api_max_connections_per_ip", l.api_max_connections_per_ip as u64),
        ];
        match zero.iter().find(|(_, v)| *v == 0) {
            Some((key, _)) => Err(SettingsError(format!("limits.{key} must be at least 1"))),
            None => Ok(()),
        }
    }
}

fn default_peer_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8443))
}

/// Settings could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid settings: {0}")]
pub struct SettingsError(String);

impl Settings {
    /// Load from a TOML file (if given), then `SDX_…` environment variables. Relative paths — keys,
    /// certificates, peers' keys and the SQLite file of `storage.url` — are resolved from the file's directory
    /// ([`Settings::resolve_paths`]), also when they come from the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        let mut fig = Figment::from(Serialized::defaults(DefaultsOnly::default()));
        if let Some(f) = file {
            if !f.is_file() {
                return Err(SettingsError(format!("{} does not exist", f.display())));
            }
            fig = fig.merge(Toml::file(f));
        }
        // Only variables of the settings' sections (SDX_NODE__ORG, SDX_STORAGE__URL, …); other SDX_ variables,
        // such as SDX_TEST_DATABASE_URL, belong to other tools.
        let sections = ["node__", "keys__", "storage__", "peers", "directory__", "delivery__", "api__", "limits__"];
        let env = Env::prefixed("SDX_")
            .filter(move |k| {
                let k = k.as_str().to_ascii_lowercase();
                sections.iter().any(|s| k.starts_with(s))
            })
            .split("__");
        fig = fig.merge(env);
        // Keys without figment's profile in front (`default.node.org`): there are no profiles here.
        let mut s: Settings =
            fig.extract().map_err(|e| SettingsError(e.to_string().replace("key \"default.", "key \"")))?;
        if let Some(file) = file {
            // The directory of the file, absolute: errors name the resolved path, and a later change of the
            // working directory changes nothing.
            let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let base = std::path::absolute(dir)
                .map_err(|e| SettingsError(format!("cannot resolve the directory of {}: {e}", file.display())))?;
            s.resolve_paths(&base)?;
        }
        s.check()?;
        Ok(s)
    }

    /// Make the relative paths absolute against `base` (the settings file's directory): the key and certificate
    /// files, the peers' signing keys, and the file of a SQLite storage URL (`sqlite://node.db?mode=rwc` and
    /// `sqlite:node.db` alike; `sqlite::memory:` and PostgreSQL URLs stay as they are). Absolute paths are kept.
    /// [`Settings::load`] does this with the file's directory; call it when settings are built in code.
    pub fn resolve_paths(&mut self, base: &Path) -> Result<(), SettingsError> {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.keys.signing_key);
        fix(&mut self.keys.tls_cert);
        fix(&mut self.keys.tls_key);
        fix(&mut self.keys.federation_ca);
        if let Some(k) = &mut self.keys.encryption_key {
            fix(k);
        }
        for p in &mut self.peers {
            fix(&mut p.signing_key);
        }
        if let Some(d) = &mut self.directory {
            for k in &mut d.authority_keys {
                fix(k);
            }
            if !d.is_url() && Path::new(&d.source).is_relative() {
                d.source = base.join(&d.source).display().to_string();
            }
        }
        for c in &mut self.connectors {
            fix(&mut c.file);
        }
        for w in &mut self.webhooks {
            fix(&mut w.secret_file);
        }
        if let Some(url) = resolve_sqlite_url(&self.storage.url, base)? {
            self.storage.url = url;
        }
        Ok(())
    }

    /// The checks [`Settings::load`] makes beyond the types: peers (not this node, each once, `https://`), API
    /// token hashes, delivery limits. Call it when settings are built in code.
    pub fn check(&self) -> Result<(), SettingsError> {
        for (i, w) in self.webhooks.iter().enumerate() {
            let ok = !w.name.is_empty()
                && w.name.len() <= 64
                && w.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(SettingsError(format!("webhooks[{i}].name: 1 to 64 of A-Z a-z 0-9 - _")));
            }
            if self.webhooks[..i].iter().any(|x| x.name == w.name) {
                return Err(SettingsError(format!("webhook {} configured twice", w.name)));
            }
            if !(w.url.starts_with("https://") || w.url.starts_with("http://")) {
                return Err(SettingsError(format!("webhook {}: url must be http:// or https://", w.name)));
            }
        }
        for (i, p) in self.peers.iter().enumerate() {
            if p.org == self.node.org {
                return Err(SettingsError(format!("peers[{i}] is this node itself")));
            }
            if self.peers[..i].iter().any(|q| q.org == p.org) {
                return Err(SettingsError(format!("peer {} configured twice", p.org)));
            }
            if !p.url.starts_with("https://") {
                return Err(SettingsError(format!("peer {} url must be https://", p.org)));
            }
        }
        if let Some(d) = &self.directory {
            if d.source.is_empty() {
                return Err(SettingsError("directory.source: a file or an https:// URL".into()));
            }
            if d.authority_keys.is_empty() {
                return Err(SettingsError(
                    "directory.authority_keys: at least one key of the directory authority (JWK file)".into(),
                ));
            }
            if !(1..=86_400).contains(&d.reload_s) {
                return Err(SettingsError("directory.reload_s: 1 to 86400 seconds".into()));
            }
        }
        for c in &self.api.clients {
            let ok =
                c.token_sha256.len() == 64 && c.token_sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if !ok {
                return Err(SettingsError(format!(
                    "api client {}: token_sha256 must be 64 lowercase hex digits",
                    c.name
                )));
            }
        }
        crate::clients::Owners::from_clients(&self.api.clients).map_err(|e| SettingsError(e.to_string()))?;
        let d = &self.delivery;
        if d.backoff_initial_ms == 0
            || d.max_attempts == 0
            || d.backoff_max_ms < d.backoff_initial_ms
            || d.concurrency == 0
            || !(1..=crate::protocol::MAX_BATCH_MESSAGES).contains(&d.batch)
        {
            return Err(SettingsError(
                "delivery: backoff_initial_ms > 0, backoff_max_ms ≥ it, max_attempts > 0, concurrency > 0, batch 1–64"
                    .into(),
            ));
        }
        self.limits.check()?;
        Ok(())
    }

    /// The peer with this organisation key.
    pub fn peer(&self, org: &OrgKey) -> Option<&PeerSettings> {
        self.peers.iter().find(|p| &p.org == org)
    }
}

/// A SQLite URL with a relative file, rewritten to the file under `base` (`None`: nothing to rewrite). The
/// file part is read as `sqlx` reads it: after `sqlite://` or `sqlite:`, up to `?`, percent-decoded.
fn resolve_sqlite_url(url: &str, base: &Path) -> Result<Option<String>, SettingsError> {
    let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else {
        return Ok(None);
    };
    let (file, query) = match rest.split_once('?') {
        Some((file, query)) => (file, Some(query)),
        None => (rest, None),
    };
    let in_memory =
        file.is_empty() || file == ":memory:" || query.is_some_and(|q| q.split('&').any(|kv| kv == "mode=memory"));
    if in_memory || file.starts_with('/') || Path::new(file).is_absolute() {
        return Ok(None);
    }
    let Some(base) = base.to_str() else {
        return Err(SettingsError(format!(
            "storage.url names the relative file `{file}`, but the settings file's directory {} is not UTF-8; \
             give an absolute path",
            base.display()
        )));
    };
    // The base goes into a URL whose file part is percent-decoded: encode what decoding or splitting would change.
    let base = base.trim_end_matches('/').replace('%', "%25").replace('?', "%3F").replace('#', "%23");
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    Ok(Some(format!("sqlite://{base}/{file}{query}")))
}

/// The defaults layer: only the sections that have defaults.
#[derive(Serialize, Default)]
struct DefaultsOnly {
    delivery: DeliverySettings,
    api: ApiSettings,
    limits: LimitSettings,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Settings::load` inside a figment jail: other tests of this process set `SDX_…` variables in theirs, and
    /// only jails are serialised.
    #[allow(clippy::result_large_err)]
    fn load_jailed(f: &Path) -> Result<Settings, SettingsError> {
        let mut out = None;
        figment::Jail::expect_with(|_| {
            out = Some(Settings::load(Some(f)));
            Ok(())
        });
        out.unwrap_or_else(|| Err(SettingsError("jail".into())))
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's test jail returns its own large error type
    fn example_settings_load() {
        let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/node.example.toml");
        let s = load_jailed(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert_eq!(s.node.org.as_str(), "psw:06000042");
        assert_eq!(s.peers.len(), 1);
        assert_eq!(s.api.clients.len(), 1);
        let defaults = DeliverySettings::default();
        assert_eq!(
            (
                s.delivery.backoff_initial_ms,
                s.delivery.backoff_max_ms,
                s.delivery.dead_after_s,
                s.delivery.max_attempts
            ),
            (defaults.backoff_initial_ms, defaults.backoff_max_ms, defaults.dead_after_s, defaults.max_attempts),
            "the example shows the defaults"
        );
        assert_eq!((s.delivery.concurrency, s.delivery.batch), (defaults.concurrency, defaults.batch));
        assert_eq!(s.limits, LimitSettings::default(), "the example shows the limits' defaults");
        assert_eq!(s.api.feed_max_wait_s, ApiSettings::default().feed_max_wait_s);
        assert_eq!(s.connectors.len(), 1);
        assert!(s.connectors[0].file.is_absolute(), "resolved from the file's directory");
        assert_eq!(s.webhooks.len(), 1);
        assert!(s.webhooks[0].secret_file.is_absolute());
        assert_eq!(s.node.role, NodeRole::Node);
        let d = s.directory.as_ref().expect("the example has a directory");
        assert!(Path::new(&d.source).is_absolute() && d.authority_keys[0].is_absolute(), "resolved from the file");
        assert_eq!(d.reload_s, 300);
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns figment's own (large) error
    fn limits_from_the_environment_and_checked() {
        let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/node.example.toml");
        figment::Jail::expect_with(|jail| {
            jail.set_env("SDX_LIMITS__HEADER_READ_TIMEOUT_MS", "250");
            let s = Settings::load(Some(&f)).map_err(|e| e.to_string())?;
            assert_eq!(s.limits.header_read_timeout_ms, 250);
            jail.set_env("SDX_LIMITS__API_MAX_CONNECTIONS_PER_IP", "0");
            let e = Settings::load(Some(&f)).unwrap_err().to_string();
            assert!(e.contains("limits.api_max_connections_per_ip must be at least 1"), "{e}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns figment's own (large) error
    fn layered_loading_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("node.toml");
        std::fs::write(
            &f,
            r#"
[node]
org = "psw:01000115"
listen = "127.0.0.1:0"
[keys]
signing_key = "sig.pem"
tls_cert = "tls.pem"
tls_key = "tls.key"
federation_ca = "/etc/sdx/ca.pem"
[storage]
url = "sqlite://mila.db?mode=rwc"
[[peers]]
org = "psw:06000042"
url = "https://127.0.0.1:9443"
signing_key = "bela.jwk"
"#,
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("SDX_TEST_DATABASE_URL", "postgres://elsewhere");
            jail.set_env("SDX_STORAGE__SCHEMA", "mila");
            let s = Settings::load(Some(&f)).map_err(|e| e.to_string())?;
            assert_eq!(s.storage.schema.as_deref(), Some("mila"), "environment overrides the file");
            assert_eq!(s.node.org.as_str(), "psw:01000115");
            assert_eq!(s.keys.signing_key, dir.path().join("sig.pem"));
            assert_eq!(s.keys.federation_ca, PathBuf::from("/etc/sdx/ca.pem"));
            assert_eq!(s.delivery.backoff(1), Duration::from_millis(1000));
            assert_eq!(s.delivery.backoff(4), Duration::from_millis(8000));
            assert_eq!(s.delivery.backoff(40), Duration::from_millis(300_000));
            Ok(())
        });
        // Inside a jail too: other tests of this process set `SDX_…` variables in theirs.
        figment::Jail::expect_with(|_| {
            // A typo is an error, not silently ignored.
            let bad = dir.path().join("bad.toml");
            let text = std::fs::read_to_string(&f).unwrap();
            std::fs::write(&bad, text.replace("[storage]", "[storage]\nulr = 1")).unwrap();
            let err = Settings::load(Some(&bad)).unwrap_err().to_string();
            assert!(err.contains("found `ulr`") && err.contains("for key \"storage.ulr\""), "{err}");
            assert!(Settings::load(Some(&dir.path().join("missing.toml"))).is_err());
            // Batches of 1 to 64 messages.
            for (batch, ok) in [(0, false), (1, true), (64, true), (65, false)] {
                let b = dir.path().join(format!("batch{batch}.toml"));
                std::fs::write(&b, format!("{text}\n[delivery]\nbatch = {batch}\n")).unwrap();
                assert_eq!(Settings::load(Some(&b)).is_ok(), ok, "batch = {batch}");
            }
            Ok(())
        });
    }

    /// A minimal settings file with these key paths and storage URL.
    fn minimal(url: &str) -> String {
        format!(
            "[node]\norg = \"psw:01000115\"\n[keys]\nsigning_key = \"keys/sig.pem\"\ntls_cert = \"tls.pem\"\n\
             tls_key = \"../tls.key\"\nfederation_ca = \"/etc/sdx/ca.pem\"\n[storage]\nurl = \"{url}\"\n\
             [[peers]]\norg = \"psw:06000042\"\nurl = \"https://bela.example\"\nsigning_key = \"peers/bela.jwk\"\n"
        )
    }

    #[test]
    fn relative_paths_and_the_sqlite_file_resolve_from_the_settings_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("node");
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("node.toml");
        let base = d.display().to_string();
        for (url, resolved) in [
            ("sqlite://node.db?mode=rwc", format!("sqlite://{base}/node.db?mode=rwc")),
            ("sqlite:node.db", format!("sqlite://{base}/node.db")),
            ("sqlite://data/node.db?mode=rwc", format!("sqlite://{base}/data/node.db?mode=rwc")),
            ("sqlite://../shared.db", format!("sqlite://{base}/../shared.db")),
            ("sqlite:///var/lib/sdx/node.db?mode=rwc", "sqlite:///var/lib/sdx/node.db?mode=rwc".into()),
            ("sqlite:/var/lib/sdx/node.db", "sqlite:/var/lib/sdx/node.db".into()),
            ("sqlite::memory:", "sqlite::memory:".into()),
            ("sqlite://?mode=memory", "sqlite://?mode=memory".into()),
            ("postgres://sdx@db.example/sdx", "postgres://sdx@db.example/sdx".into()),
        ] {
            std::fs::write(&f, minimal(url)).unwrap();
            let s = load_jailed(&f).unwrap();
            assert_eq!(s.storage.url, resolved, "{url}");
            assert_eq!(s.keys.signing_key, d.join("keys/sig.pem"));
            assert_eq!(s.keys.tls_cert, d.join("tls.pem"));
            assert_eq!(s.keys.tls_key, d.join("../tls.key"));
            assert_eq!(s.keys.federation_ca, PathBuf::from("/etc/sdx/ca.pem"), "absolute paths stay");
            assert_eq!(s.peers[0].signing_key, d.join("peers/bela.jwk"));
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns figment's own (large) error
    fn a_relative_settings_file_gives_absolute_paths() {
        figment::Jail::expect_with(|jail| {
            let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
            jail.create_file("node.toml", &minimal("sqlite://node.db?mode=rwc"))?;
            std::fs::create_dir_all(cwd.join("etc")).map_err(|e| e.to_string())?;
            jail.create_file("etc/node.toml", &minimal("sqlite:node.db"))?;
            let s = Settings::load(Some(Path::new("node.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.storage.url, format!("sqlite://{}/node.db?mode=rwc", cwd.display()));
            assert_eq!(s.keys.tls_cert, cwd.join("tls.pem"));
            let s = Settings::load(Some(Path::new("etc/node.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.storage.url, format!("sqlite://{}/etc/node.db", cwd.display()));
            assert_eq!(s.peers[0].signing_key, cwd.join("etc/peers/bela.jwk"));
            Ok(())
        });
    }

    /// The rewritten URL names the very file the store opens, also under a directory whose name holds
    /// characters that mean something in a URL.
    #[test]
    fn the_store_opens_the_file_next_to_the_settings() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("odd %41 name?x=1 #2");
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("node.toml");
        std::fs::write(&f, minimal("sqlite://node.db?mode=rwc")).unwrap();
        let s = load_jailed(&f).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async {
            let store =
                sdx_store::open_any(&s.storage.url, None).await.unwrap_or_else(|e| panic!("{}: {e}", s.storage.url));
            store.close().await;
        });
        assert!(d.join("node.db").is_file(), "{} in {}", s.storage.url, d.display());
        let created: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(created.len(), 1, "nothing created elsewhere: {created:?}");
    }
}
