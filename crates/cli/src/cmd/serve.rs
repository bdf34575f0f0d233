//! `sdx serve --config node.toml`: one organisation's node, until Ctrl-C or SIGTERM.
//!
//! Logs go to stderr: human-readable text, or JSON lines with `SDX_LOG_FORMAT=json` (one object per line:
//! `timestamp`, `level`, `target`, the event's fields with `message`, and `span`/`spans` with the request's
//! fields). `SDX_LOG` is the filter (`info` by default; e.g. `SDX_LOG=debug,sqlx=warn`). Text has ANSI colours only
//! when stderr is a terminal. See `docs/observability.md`.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};
use sdx_node::app::App;
use sdx_node::settings::Settings;

use crate::Outcome;

/// Log format from `SDX_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

fn log_format() -> Result<LogFormat> {
    match std::env::var("SDX_LOG_FORMAT") {
        Err(std::env::VarError::NotPresent) => Ok(LogFormat::Text),
        Ok(v) if v.eq_ignore_ascii_case("text") || v.is_empty() => Ok(LogFormat::Text),
        Ok(v) if v.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
        Ok(v) => bail!("SDX_LOG_FORMAT must be `json` or `text`, not `{v}`"),
        Err(e) => bail!("SDX_LOG_FORMAT: {e}"),
    }
}

/// Install the process's log subscriber: stderr, `SDX_LOG` filter, text or JSON lines.
pub fn init_logging() -> Result<()> {
    let format = log_format()?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SDX_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(true).init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    Ok(())
}

/// Load the settings, build the node, serve until a shutdown signal; in-flight requests finish first.
pub fn serve(config: &Path) -> Result<Outcome> {
    init_logging()?;
    let mut settings = Settings::load(Some(config))?;
    let connectors = crate::cmd::connector::prepare(&mut settings)?;
    let org = settings.node.org.clone();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async move {
        let shutdown = shutdown_signal()?;
        let app = App::build(settings).await.context("cannot start the node")?;
        let addr = app.peer_addr()?;
        // Two lines on stdout that scripts and tests can wait for; a closed stdout must not stop the node.
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "sdx node {org} serving peers on https://{addr}");
            let _ = writeln!(out, "sdx node {org} local API on http://{}", app.api_addr()?);
            let _ = out.flush();
        }
        tracing::info!(org = %org, peer_endpoint = %addr, local_api = %app.api_addr()?, "node started");
        let stop_connectors = std::sync::Arc::new(tokio::sync::Notify::new());
        crate::cmd::connector::start_all(connectors, &format!("http://{}/api/v1", app.api_addr()?), &stop_connectors)?;
        let notify = stop_connectors.clone();
        app.run_until_stopped(async move {
            shutdown.await;
            notify.notify_waiters();
        })
        .await?;
        tracing::info!(org = %org, "node stopped");
        Ok(Outcome::Valid)
    })
}

/// Ctrl-C or SIGTERM. The handlers are installed here, at once, so that a signal that arrives right after the
/// node said it serves is not missed (and does not kill the process unhandled).
pub fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
