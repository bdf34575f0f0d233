//! A connector's file (TOML): its name, the organisation, the node it talks to (when run alone), the ticket
//! system and the mapping. `sdx serve` runs one per `[[connectors]] file = "…"` of its settings (and then talks
//! to its own local API, ignoring `[node]`); `sdx connector run --config FILE` runs one alone; `sdx connector
//! check --config FILE` checks one against the live system. Every key is in `docs/connectors.md`.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use sdx_model::OrgKey;

use crate::mapping::Mapping;
use crate::node::NodeClient;
use crate::push::{MIN_TOKEN, PushListener, PushSettings};
use crate::secret::Secret;
use crate::sync::Connector;
use crate::system::{TicketSystem, Vocabulary};
use crate::systems::{AnySystem, SystemConfig};

/// A connector file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorFile {
    /// The connector's name: its state in the node's store and its idempotency keys are kept under it
    /// (1 to 64 of `A-Z a-z 0-9 - _`). Never rename a running connector.
    pub name: String,
    /// This organisation's SDX key (the node's `node.org`).
    pub organisation: String,
    /// How often the ticket system is polled, in milliseconds (default 1000). Changes from SDX are pushed by the
    /// node's change feed and written at once.
    #[serde(default = "default_poll")]
    pub poll_interval_ms: u64,
    /// The node's local API (only when run alone).
    pub node: Option<NodeEndpoint>,
    /// Where the system pushes "a ticket changed" (OTOBO, RT), so the connector polls at once.
    pub push: Option<PushSettings>,
    /// The ticket system.
    pub system: SystemConfig,
    /// The mapping.
    pub mapping: Mapping,
}

fn default_poll() -> u64 {
    1000
}

/// The node's local API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEndpoint {
    /// Its base URL, e.g. `http://127.0.0.1:8080/api/v1`.
    pub url: String,
    /// A bearer token of one of its `[[api.clients]]`.
    pub token: Secret,
}

/// Why a connector file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not readable.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// What happened.
        error: std::io::Error,
    },
    /// Not a valid connector file.
    #[error("{path}: {detail}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
}

impl ConnectorFile {
    /// Read and check a connector file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Io { path: shown.clone(), error })?;
        Self::parse(&text).map_err(|detail| ConfigError::Invalid { path: shown, detail })
    }

    /// Parse and check the text of a connector file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let f: ConnectorFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let ok = !f.name.is_empty()
            && f.name.len() <= 64
            && f.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!("name `{}`: 1 to 64 of A-Z a-z 0-9 - _", f.name));
        }
        OrgKey::parse(&f.organisation).map_err(|e| format!("organisation: {e}"))?;
        if !(100..=3_600_000).contains(&f.poll_interval_ms) {
            return Err("poll_interval_ms: 100 to 3600000".into());
        }
        if f.push.as_ref().is_some_and(|p| p.token.expose().len() < MIN_TOKEN) {
            return Err(format!("push.token: at least {MIN_TOKEN} characters"));
        }
        f.mapping.validate().map_err(|e| e.to_string())?;
        Ok(f)
    }

    /// The connector, talking to the node at `node` (its own `[node]` when `None`).
    pub fn connector(&self, node: Option<(&str, Secret)>) -> Result<Connector<AnySystem>, String> {
        let (url, token) = match (node, &self.node) {
            (Some((u, t)), _) => (u.to_string(), t),
            (None, Some(n)) => (n.url.clone(), n.token.clone()),
            (None, None) => {
                return Err(format!("connector {}: [node] url and token are needed to run it alone", self.name));
            }
        };
        let client = NodeClient::new(&url, token, &self.name).map_err(|e| e.to_string())?;
        let system = AnySystem::new(&self.system).map_err(|e| e.to_string())?;
        let me = OrgKey::parse(&self.organisation).map_err(|e| e.to_string())?;
        Ok(Connector::new(
            &self.name,
            me,
            system,
            client,
            self.mapping.clone(),
            self.system.case_field(),
            Duration::from_millis(self.poll_interval_ms),
        ))
    }

    /// Bind the push listener of `[push]`, if any (before [`run`], so that a taken port is an error at start).
    /// Needs a Tokio runtime.
    pub fn bind_push(&self) -> std::io::Result<Option<PushListener>> {
        self.push.as_ref().map(PushSettings::bind).transpose()
    }
}

/// Run `connector` until `stop` resolves, serving pushes on `listener` (see [`ConnectorFile::bind_push`]).
pub async fn run(
    connector: Connector<AnySystem>,
    listener: Option<PushListener>,
    stop: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let name = connector.name().to_string();
    {
        let pushes = async {
            match listener {
                Some(l) => {
                    tracing::info!(connector = %name, listen = %l.local_addr()?, "taking pushes");
                    l.serve(connector.waker()).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = connector.run(stop) => Ok(()),
            r = pushes => r,
        }
    }
}

impl ConnectorFile {
    /// Check the mapping against the live system: every status, priority, type, queue and field it names must
    /// exist. Returns what the system offers and the problems found (none: ready).
    pub async fn check(&self) -> Result<(Vocabulary, Vec<String>), String> {
        let system = AnySystem::new(&self.system).map_err(|e| e.to_string())?;
        let v = system.vocabulary().await.map_err(|e| e.to_string())?;
        let problems = self.mapping.check(&v, self.system.case_field());
        Ok((v, problems))
    }
}
