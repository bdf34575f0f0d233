//! `sdx connector check --config FILE` (the mapping against the live ticket system, before anything is sent)
//! and `sdx connector run --config FILE` (one connector alone, against the node named in the file's `[node]`).
//! `sdx serve` runs the connectors of its settings itself ([`start_all`]).

use std::path::Path;

use anyhow::{Context as _, Result};
use sdx_connectors::config::ConnectorFile;
use sdx_connectors::secret::Secret;
use sdx_node::settings::{ApiClient, Settings};

use crate::Outcome;

/// Check a connector file against its live system: exit 0 when every value it names exists, 1 otherwise.
pub fn check(config: &Path) -> Result<Outcome> {
    let file = ConnectorFile::load(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (vocabulary, problems) = runtime.block_on(file.check()).map_err(anyhow::Error::msg)?;
    println!("connector {}: {} system", file.name, system_kind(&file));
    println!("  statuses:   {}", vocabulary.statuses.join(", "));
    println!("  priorities: {}", vocabulary.priorities.join(", "));
    println!("  queues:     {}", vocabulary.queues.join(", "));
    if !vocabulary.kinds.is_empty() {
        println!("  types:      {}", vocabulary.kinds.join(", "));
    }
    println!("  fields:     {}", vocabulary.fields.join(", "));
    if problems.is_empty() {
        println!("ok: the mapping fits the system");
        return Ok(Outcome::Valid);
    }
    for p in &problems {
        eprintln!("{}: {p}", config.display());
    }
    eprintln!("{} problem(s): fix the mapping or the system before running the connector", problems.len());
    Ok(Outcome::Invalid)
}

fn system_kind(file: &ConnectorFile) -> &'static str {
    match file.system {
        sdx_connectors::systems::SystemConfig::Otobo(_) => "otobo",
        sdx_connectors::systems::SystemConfig::Rt(_) => "rt",
        sdx_connectors::systems::SystemConfig::Redmine(_) => "redmine",
    }
}

/// Run one connector alone until Ctrl-C or SIGTERM.
pub fn run(config: &Path) -> Result<Outcome> {
    crate::cmd::serve::init_logging()?;
    let file = ConnectorFile::load(config)?;
    let connector = file.connector(None).map_err(anyhow::Error::msg)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let stop = crate::cmd::serve::shutdown_signal()?;
        let push = file.bind_push().with_context(|| format!("connector {}: [push] listen", file.name))?;
        tracing::info!(connector = %file.name, "connector started");
        sdx_connectors::config::run(connector, push, stop).await?;
        tracing::info!(connector = %file.name, "connector stopped");
        Ok(Outcome::Valid)
    })
}

/// The connectors of a node's settings, loaded, each with a fresh API token (added to the settings' API clients
/// as `connector NAME`, so the node accepts it).
pub struct Prepared {
    files: Vec<(ConnectorFile, String)>,
}

/// Load the settings' connector files and give each a token of the node's local API.
pub fn prepare(settings: &mut Settings) -> Result<Prepared> {
    let mut files = Vec::new();
    for c in &settings.connectors {
        let file = ConnectorFile::load(&c.file)?;
        if file.organisation != settings.node.org.to_string() {
            anyhow::bail!(
                "{}: organisation {} is not this node's ({})",
                c.file.display(),
                file.organisation,
                settings.node.org
            );
        }
        let mut raw = [0u8; 32];
        aws_lc_rs::rand::fill(&mut raw).map_err(|_| anyhow::anyhow!("no random numbers for a connector token"))?;
        let token = hex::encode(raw);
        let hash = sdx_node::protocol::sha256(token.as_bytes()).to_string();
        settings.api.clients.push(ApiClient {
            cases: c.cases,
            services: c.services.clone(),
            default_owner: c.default_owner,
            ..ApiClient::all_cases(format!("connector {}", file.name), hash)
        });
        files.push((file, token));
    }
    Ok(Prepared { files })
}

/// Start the prepared connectors against the local API at `api` (`http://ADDR/api/v1`); each runs until `stop`
/// is notified.
pub fn start_all(prepared: Prepared, api: &str, stop: &std::sync::Arc<tokio::sync::Notify>) -> Result<()> {
    for (file, token) in prepared.files {
        let connector = file.connector(Some((api, Secret::new(token)))).map_err(anyhow::Error::msg)?;
        let push = file.bind_push().with_context(|| format!("connector {}: [push] listen", file.name))?;
        let stop = stop.clone();
        let name = file.name.clone();
        tokio::spawn(async move {
            tracing::info!(connector = %name, "connector started");
            match sdx_connectors::config::run(connector, push, stop.notified()).await {
                Ok(()) => tracing::info!(connector = %name, "connector stopped"),
                Err(e) => tracing::error!(connector = %name, error = %e, "push listener failed; connector stopped"),
            }
        });
    }
    Ok(())
}
