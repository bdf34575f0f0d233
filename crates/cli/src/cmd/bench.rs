//! `sdx bench forward [--count N] [--concurrency C] [--json]`: two nodes on loopback (mutual TLS, SQLite with
//! durable commits, ES256), N cases forwarded from MiLa to BeLa with C in flight; throughput, p50/p99 latency
//! from forward to stored signed receipt, and — in the same run, against the same server stack — the
//! throughput of a no-op mutual-TLS POST of the same payload size (the baseline). With `--json` the last line
//! is one JSON object with `tickets_per_s`, `p50_ms`, `p99_ms`, `baseline_per_s`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sdx_model::sample;
use sdx_model::{CaseId, OrgKey, Timestamp};
use sdx_node::peer_api::NOOP_PATH;
use sdx_node::tls;
use sdx_store::{DeliveryState, EventKind, Store};

use crate::Outcome;
use crate::cmd::pair::{Pair, scratch_dir};

/// `sdx bench forward`
pub fn forward(count: usize, concurrency: usize, json: bool) -> Result<Outcome> {
    if count == 0 || concurrency == 0 {
        bail!("--count and --concurrency must be at least 1");
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(run(count, concurrency, json))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn run(count: usize, concurrency: usize, json: bool) -> Result<Outcome> {
    let dir = scratch_dir("sdx-bench")?;
    let pair = Pair::start(&dir, None, "sdx_bench").await?;
    let template = sample::typical_case();
    let payload_size = sdx_codec::json::canonical(&sample::typical_forward()).len();
    eprintln!("forwarding {count} cases ({payload_size} bytes canonical JSON each), {concurrency} in flight…");

    // Forward: `concurrency` tasks take the next case until `count` are committed to MiLa's outbox.
    let next = Arc::new(AtomicUsize::new(0));
    let starts = Arc::new(std::sync::Mutex::new(Vec::with_capacity(count)));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (mila, next, starts, template) = (pair.mila.clone(), next.clone(), starts.clone(), template.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let mut case = template.clone();
                case.case_id = CaseId::new_random();
                let started = Timestamp::now();
                let sent = mila.forward(case.clone(), None).await?;
                starts.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push((case.case_id, started));
                // Keep `concurrency` cases in flight end to end: wait for this one's signed receipt.
                if !mila.wait_delivered(sent.message_id, Duration::from_secs(60)).await? {
                    bail!("no receipt for {} within 60 s", sent.message_id);
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    // Everything delivered?
    let pending = pair.mila.store().list_deliveries(Some(DeliveryState::Pending), 1).await?;
    let elapsed = t0.elapsed();
    if !pending.is_empty() {
        bail!("deliveries still pending at the end");
    }
    let tickets_per_s = count as f64 / elapsed.as_secs_f64();

    // Latency: forward call → signed receipt stored (timeline event times, milliseconds).
    let starts = std::mem::take(&mut *starts.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let mut lat = Vec::with_capacity(starts.len());
    for (id, started) in &starts {
        let tl = pair.mila.store().timeline(*id).await?;
        if let Some(r) = tl.iter().find(|e| e.kind == EventKind::ReceiptReceived) {
            lat.push((r.at.unix_millis() - started.unix_millis()) as f64);
        }
    }
    lat.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&lat, 0.50), percentile(&lat, 0.99));

    // Baseline: a no-op POST of the same size on the same server stack, same concurrency.
    let cert = pair.ca.issue_node(&OrgKey::parse(sample::MILA)?, &[])?;
    let client = tls::http_client(&cert, pair.ca.cert_pem())?;
    let url = format!("https://localhost:{}{NOOP_PATH}", pair.bela_port);
    let body = "x".repeat(payload_size);
    let n = count.max(2000);
    let next = Arc::new(AtomicUsize::new(0));
    let t1 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, body, next) = (client.clone(), url.clone(), body.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let r = client.post(&url).body(body.clone()).send().await?;
                if r.status() != 204 {
                    bail!("baseline answered {}", r.status());
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let baseline_per_s = n as f64 / t1.elapsed().as_secs_f64();
    pair.stop().await;
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "forwarded and acknowledged: {count} cases in {:.2} s = {tickets_per_s:.0} cases/s",
        elapsed.as_secs_f64()
    );
    println!("latency forward → stored signed receipt: p50 {p50:.1} ms, p99 {p99:.1} ms");
    println!(
        "baseline no-op mTLS POST ({payload_size} bytes, {concurrency} in flight): {baseline_per_s:.0}/s; ratio {:.2}",
        tickets_per_s / baseline_per_s
    );
    if json {
        println!(
            "{}",
            serde_json::json!({
                "tickets_per_s": (tickets_per_s * 10.0).round() / 10.0,
                "p50_ms": p50, "p99_ms": p99,
                "baseline_per_s": (baseline_per_s * 10.0).round() / 10.0,
                "ratio_to_baseline": ((tickets_per_s / baseline_per_s) * 1000.0).round() / 1000.0,
                "count": count, "concurrency": concurrency, "payload_bytes": payload_size,
                "storage": "sqlite", "signature": "ES256",
            })
        );
    }
    Ok(Outcome::Valid)
}
