//! The transport baseline: a no-op 2 KB POST from node A to node B over mutual TLS, through exactly the stack a
//! node uses ([`tls::serve_mtls`] + [`tls::http_client`]), at 1, 16 and 64 requests in flight.
//!
//! ```text
//! cargo run --release -p sdx-node --example mtls_noop [-- --seconds 3 --http1 --concurrency 1,16,64]
//! ```
//!
//! Prints requests/s and latency percentiles per concurrency. Client and server share the machine (and, here, one
//! Tokio runtime with one worker per core), so the figures are whole-machine figures. HTTP/2 runs every request
//! over one connection; with `--http1` the client opens one connection per request in flight.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use sdx_model::OrgKey;
use sdx_node::pki::Ca;
use sdx_node::tls;

const PAYLOAD: usize = 2048;

struct Options {
    seconds: f64,
    http1: bool,
    levels: Vec<usize>,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options { seconds: 3.0, http1: false, levels: vec![1, 16, 64] };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => o.seconds = args.next().context("--seconds N")?.parse()?,
            "--http1" => o.http1 = true,
            "--concurrency" => {
                o.levels = args
                    .next()
                    .context("--concurrency 1,16,64")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            other => bail!("unknown argument {other}; use --seconds N, --http1, --concurrency 1,16,64"),
        }
    }
    Ok(o)
}

async fn noop(_body: Bytes) -> StatusCode {
    StatusCode::NO_CONTENT
}

/// `concurrency` workers post until `duration` is over; returns the number of requests and every latency.
async fn run(
    client: &reqwest::Client,
    url: &str,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<(usize, Duration, Vec<Duration>)> {
    let body = Bytes::from(vec![b'x'; PAYLOAD]);
    let start = Instant::now();
    let deadline = start + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.to_owned(), body.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let response = client.post(&url).body(body.clone()).send().await?;
                    if response.status() != StatusCode::NO_CONTENT {
                        bail!("unexpected status {}", response.status());
                    }
                    response.bytes().await?;
                    latencies.push(t.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await??);
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    Ok((all.len(), elapsed, all))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    let ca = Ca::generate("bench federation")?;
    let a = ca.issue_node(&OrgKey::parse("psw:01000115")?, &[])?;
    let b = ca.issue_node(&OrgKey::parse("psw:06412000")?, &[])?;

    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("https://127.0.0.1:{}/noop", listener.local_addr()?.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tls::serve_mtls(
        listener,
        axum::Router::new().route("/noop", post(noop)),
        tls::server_config(&b, ca.cert_pem())?,
        async move {
            let _ = stopped.await;
        },
    ));

    let client = if o.http1 {
        let mut config = tls::client_config(&a, ca.cert_pem())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tls::http_client_builder(config).http1_only().build()?
    } else {
        tls::http_client(&a, ca.cert_pem())?
    };
    let protocol = if o.http1 { "HTTP/1.1" } else { "HTTP/2" };
    let duration = Duration::from_secs_f64(o.seconds);

    println!(
        "no-op POST, {PAYLOAD} B, mTLS {protocol}, {} worker threads, {:.1} s per level",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        o.seconds
    );
    run(&client, &url, 16, Duration::from_secs(1)).await?; // warm-up: connections, allocator, caches
    for &concurrency in &o.levels {
        let (count, elapsed, latencies) = run(&client, &url, concurrency, duration).await?;
        println!(
            "concurrency {concurrency:>3}: {:>8.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>6.2} ms   ({count} requests)",
            count as f64 / elapsed.as_secs_f64(),
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0),
        );
    }

    let _ = stop.send(());
    server.await??;
    Ok(())
}
