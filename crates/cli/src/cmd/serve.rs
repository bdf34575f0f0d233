//! `sdx serve --config node.toml`: one organisation's node, until Ctrl-C or SIGTERM.

use std::path::Path;

use anyhow::{Context, Result};
use sdx_node::app::App;
use sdx_node::settings::Settings;

use crate::Outcome;

/// Load the settings, build the node, serve until a shutdown signal; in-flight requests finish first.
pub fn serve(config: &Path) -> Result<Outcome> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SDX_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let settings = Settings::load(Some(config))?;
    let org = settings.node.org.clone();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async move {
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
        app.run_until_stopped(shutdown_signal()).await?;
        eprintln!("sdx node {org} stopped");
        Ok(Outcome::Valid)
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
