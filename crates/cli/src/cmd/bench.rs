//! `sdx bench forward [--count N] [--concurrency C] [--json]`: two nodes on loopback (mutual TLS, SQLite with
//! durable commits, ES256), N cases forwarded from MiLa to BeLa with C in flight; throughput, p50/p99 latency
//! from forward to stored signed receipt, and — in the same run, against the same server stack — the
//! throughput of a no-op mutual-TLS POST of the same payload size (the baseline). With `--json` the last line
//! is one JSON object with `tickets_per_s`, `p50_ms`, `p99_ms`, `baseline_per_s`. For the nodes it starts
//! itself it also reports the CPU the forwarding took (`cpu_ms_per_case`, `cores_busy`: both nodes and the load
//! generator, user and system time of the process): with every part on the same cores, the rate a run can
//! reach is at most the cores divided by the CPU per case.
//!
//! Further options: `--rate R` starts R cases per second whatever the answers (an open loop, as a ticket
//! system produces them; `--concurrency` is then unused) to measure latency at a given load; `--preload N`
//! first stores N delivered cases on both nodes (as a forward leaves them: case, message, receipt, sequence,
//! delivery, timeline) to show the rate and the lookups with a full database; `--database-url postgres://…`
//! runs both nodes on PostgreSQL. Every run also reports the median time of a case lookup and of a query page.
//!
//! With `--api URL --token-file F --peer URL --tls-cert F --tls-key F --ca F` it measures nodes that are running
//! already: cases go in through the forwarding node's local API (`POST /cases?waitForReceipt=60`, which answers
//! once the signed receipt is stored; latency is measured by the client), and the baseline runs against the
//! receiving node's peer endpoint with the given federation certificate. The forwarding node must be
//! `psw:01000115` with `psw:06000042` as its peer, as the sample case names them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sdx_model::sample;
use sdx_model::{Ars, CaseId, MessageId, MessageType, OrgKey, ReceiptResult, Status, Timestamp};
use sdx_node::peer_api::NOOP_PATH;
use sdx_node::tls;
use sdx_store::{
    CaseQuery, CaseRecord, Delivery, DeliveryState, Direction, EventKind, MessageRecord, MessageState, OurRole,
    ReceiptRecord, Store, StoreTx, TimelineEvent,
};

use crate::Outcome;
use crate::cmd::demo_topology::cpu_time;
use crate::cmd::pair::{Pair, scratch_dir};

/// Options of `sdx bench forward`.
#[derive(Debug, Clone)]
pub struct ForwardOptions {
    /// Cases to forward.
    pub count: usize,
    /// Cases in flight (closed loop).
    pub concurrency: usize,
    /// End with one JSON line.
    pub json: bool,
    /// Start this many cases per second instead (open loop).
    pub rate: Option<f64>,
    /// Cases stored on both nodes before the run.
    pub preload: usize,
    /// Run on this PostgreSQL server instead of SQLite.
    pub database_url: Option<String>,
    /// Run against nodes that are running already instead of starting two.
    pub target: Option<Target>,
}

/// Running nodes to measure (`--api … --token-file … --peer … --tls-cert … --tls-key … --ca …`).
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL of the forwarding node's local API, e.g. `http://127.0.0.1:8080/api/v1`.
    pub api: String,
    /// File holding that API's bearer token.
    pub token_file: std::path::PathBuf,
    /// Base URL of the receiving node's peer endpoint (for the no-op baseline), e.g. `https://bela:8443`.
    pub peer: String,
    /// A federation client certificate and key for the baseline (PEM files).
    pub tls_cert: std::path::PathBuf,
    /// Its key.
    pub tls_key: std::path::PathBuf,
    /// The federation CA (PEM).
    pub ca: std::path::PathBuf,
}

/// `sdx bench forward`
pub fn forward(opts: ForwardOptions) -> Result<Outcome> {
    if opts.count == 0 || opts.concurrency == 0 {
        bail!("--count and --concurrency must be at least 1");
    }
    if let Some(r) = opts.rate
        && !(r.is_finite() && r > 0.0)
    {
        bail!("--rate must be a positive number of cases per second");
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(run(opts))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A copy of the typical case with a new id and a region from `i`.
fn varied_case(template: &sdx_model::Case, i: usize) -> sdx_model::Case {
    const REGION: [&str; 4] = ["010020000000", "064120000000", "091620000000", "110000000000"];
    let mut case = template.clone();
    case.case_id = CaseId::new_random();
    case.region = Ars::parse(REGION[(i / 5) % REGION.len()]).ok();
    case
}

/// A stored case with a status from `i`, so that status filters select parts of a preloaded database (the
/// store does not check a case's history; only the rows and their indexes matter here).
fn stored_case(template: &sdx_model::Case, i: usize) -> sdx_model::Case {
    const STATUS: [Status; 5] = [Status::New, Status::InProgress, Status::Pending, Status::Resolved, Status::Closed];
    let mut case = varied_case(template, i);
    case.status = STATUS[i % STATUS.len()];
    case
}

/// Store `n` cases on both nodes as a delivered forward leaves them, 1,000 per transaction.
async fn preload(pair: &Pair, n: usize) -> Result<Vec<CaseId>> {
    let (mila_org, bela_org) = (OrgKey::parse(sample::MILA)?, OrgKey::parse(sample::BELA)?);
    let template = sample::typical_case();
    let mut sample_ids = Vec::new();
    let t = Instant::now();
    let mut done = 0;
    while done < n {
        let k = (n - done).min(1000);
        let (mut mt, mut bt) = (pair.mila.store().begin().await?, pair.bela.store().begin().await?);
        for i in done..done + k {
            let mut case = stored_case(&template, i);
            let at = Timestamp::now();
            let (id, mid) = (case.case_id, MessageId::new_random());
            // A stand-in for the signed message: the rows matter here, not the 4 KB of the JWS.
            let jws = format!("preloaded.{mid}.x");
            let digest = sdx_codec::validate::sha256(jws.as_bytes());
            let message = |direction, peer: &OrgKey, state| MessageRecord {
                message_id: mid,
                case_id: Some(id),
                direction,
                peer: peer.clone(),
                message_type: MessageType::Forward,
                sequence: Some(1),
                created_at: at,
                stored_at: at,
                jws: jws.clone(),
                digest: digest.clone(),
                state,
            };
            let receipt = |direction| ReceiptRecord {
                for_message: mid,
                direction,
                result: ReceiptResult::Accepted,
                jws: format!("preloaded.receipt.{mid}"),
                received_at: at,
            };
            let event = |kind, detail: &str| TimelineEvent {
                case_id: id,
                at,
                kind,
                message_id: Some(mid),
                detail: detail.to_string(),
            };
            mt.put_case(
                &CaseRecord {
                    case: case.clone(),
                    partner: bela_org.clone(),
                    our_role: OurRole::Originator,
                    updated_at: at,
                    owner: None,
                },
                None,
            )
            .await?;
            mt.next_out_sequence(id, &bela_org).await?;
            mt.insert_message(&message(Direction::Out, &bela_org, MessageState::Pending)).await?;
            mt.enqueue(&Delivery::pending(mid, bela_org.clone(), at)).await?;
            mt.mark_delivered(mid, &receipt(Direction::In)).await?;
            mt.add_event(&event(EventKind::MessageSent, "forward #1 (preloaded)")).await?;
            mt.add_event(&event(EventKind::ReceiptReceived, "accepted (preloaded)")).await?;
            case.assignee = bela_org.clone();
            bt.put_case(
                &CaseRecord {
                    case,
                    partner: mila_org.clone(),
                    our_role: OurRole::Assignee,
                    updated_at: at,
                    owner: None,
                },
                None,
            )
            .await?;
            bt.last_in_sequence(id, &mila_org).await?;
            bt.set_last_in_sequence(id, &mila_org, 1).await?;
            bt.insert_message(&message(Direction::In, &mila_org, MessageState::Applied)).await?;
            bt.put_receipt(&receipt(Direction::Out)).await?;
            bt.add_event(&event(EventKind::MessageReceived, "forward #1 (preloaded)")).await?;
            if i % (n / 1000).max(1) == 0 {
                sample_ids.push(id);
            }
        }
        mt.commit().await?;
        bt.commit().await?;
        done += k;
        if done % 100_000 == 0 || done == n {
            eprintln!("preloaded {done} of {n} cases ({:.0} s)", t.elapsed().as_secs_f64());
        }
    }
    Ok(sample_ids)
}

/// Median time of a case lookup (µs) and of a query page of 100 (ms) on MiLa's store.
async fn lookups(pair: &Pair, ids: &[CaseId]) -> Result<(f64, f64)> {
    let store = pair.mila.store();
    let template = sample::typical_case();
    let mut lookup = Vec::new();
    for id in ids.iter().take(1000) {
        let t = Instant::now();
        store.get_case(*id).await?.with_context(|| format!("case {id} is missing"))?;
        lookup.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let queries = [
        CaseQuery { status: vec![Status::Pending], ..CaseQuery::default() },
        CaseQuery {
            status: vec![Status::New, Status::InProgress],
            priority: Some(template.priority),
            ..CaseQuery::default()
        },
        CaseQuery { region_prefix: Some(Ars::parse("06")?), ..CaseQuery::default() },
        CaseQuery { partner: Some(OrgKey::parse(sample::BELA)?), ..CaseQuery::default() },
    ];
    let mut query = Vec::new();
    for _ in 0..5 {
        for q in &queries {
            let q = CaseQuery { limit: 100, ..q.clone() };
            let t = Instant::now();
            store.query_cases(&q).await?;
            query.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    lookup.sort_by(f64::total_cmp);
    query.sort_by(f64::total_cmp);
    Ok((percentile(&lookup, 0.5), percentile(&query, 0.5)))
}

/// Forward `case` from MiLa, note when it started, and wait for its signed receipt.
async fn forward_one(
    mila: &sdx_node::engine::Engine<sdx_store::AnyStore>,
    case: sdx_model::Case,
    starts: &std::sync::Mutex<Vec<(CaseId, Timestamp)>>,
) -> Result<()> {
    let started = Timestamp::now();
    let id = case.case_id;
    let sent = mila.forward(case, None).await?;
    starts.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push((id, started));
    if !mila.wait_delivered(sent.message_id, Duration::from_secs(60)).await? {
        bail!("no receipt for {} within 60 s", sent.message_id);
    }
    Ok(())
}

/// The figures of a run, printed as text and (with `--json`) as the last line; `extra` adds to the JSON object.
struct Figures {
    count: usize,
    concurrency: usize,
    rate: Option<f64>,
    elapsed: Duration,
    p50: f64,
    p99: f64,
    baseline_per_s: f64,
    payload_size: usize,
    /// CPU time of this process while the cases were forwarded (both nodes and the load generator), where known.
    cpu: Option<Duration>,
}

impl Figures {
    fn report(&self, what: &str, json: bool, extra: serde_json::Value) {
        let Figures { count, concurrency, rate, elapsed, p50, p99, baseline_per_s, payload_size, cpu } = *self;
        let tickets_per_s = count as f64 / elapsed.as_secs_f64();
        println!("{what}: {count} cases in {:.2} s = {tickets_per_s:.0} cases/s", elapsed.as_secs_f64());
        // CPU per case and cores busy: what bounds the rate when both nodes share the machine's cores.
        let cpu = cpu.map(|c| (c.as_secs_f64() * 1000.0 / count as f64, c.as_secs_f64() / elapsed.as_secs_f64()));
        if let Some((per_case, busy)) = cpu {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            println!(
                "CPU (both nodes and the load generator): {per_case:.2} ms per case, {busy:.2} of {cores} cores busy"
            );
        }
        println!("latency forward → stored signed receipt: p50 {p50:.1} ms, p99 {p99:.1} ms");
        println!(
            "baseline no-op mTLS POST ({payload_size} bytes, {concurrency} in flight): {baseline_per_s:.0}/s; ratio {:.2}",
            tickets_per_s / baseline_per_s
        );
        if json {
            let mut v = serde_json::json!({
                "tickets_per_s": (tickets_per_s * 10.0).round() / 10.0,
                "p50_ms": (p50 * 10.0).round() / 10.0, "p99_ms": (p99 * 10.0).round() / 10.0,
                "baseline_per_s": (baseline_per_s * 10.0).round() / 10.0,
                "ratio_to_baseline": ((tickets_per_s / baseline_per_s) * 1000.0).round() / 1000.0,
                "count": count, "concurrency": if rate.is_some() { serde_json::Value::Null } else { concurrency.into() },
                "rate_per_s": rate, "payload_bytes": payload_size, "signature": "ES256",
                "cpu_ms_per_case": cpu.map(|(c, _)| (c * 1000.0).round() / 1000.0),
                "cores_busy": cpu.map(|(_, b)| (b * 100.0).round() / 100.0),
            });
            if let (Some(o), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
                o.extend(e);
            }
            println!("{v}");
        }
    }
}

/// CPU time this process (both nodes and the load generator) has used so far; `None` without `/proc`.
fn process_cpu() -> Option<Duration> {
    cpu_time(std::process::id()).ok()
}

/// No-op POSTs of `payload_size` bytes to `url`, `concurrency` at a time, `n` in all: per second.
async fn baseline(
    client: reqwest::Client,
    url: String,
    payload_size: usize,
    concurrency: usize,
    n: usize,
) -> Result<f64> {
    let body = "x".repeat(payload_size);
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
    Ok(n as f64 / t1.elapsed().as_secs_f64())
}

/// Forward through a running node's local API and wait for each signed receipt there.
async fn run_against(t: Target, count: usize, concurrency: usize, json: bool, rate: Option<f64>) -> Result<Outcome> {
    let read = |p: &std::path::Path| std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()));
    let token = read(&t.token_file)?.trim().to_string();
    let base = t.api.trim_end_matches('/').to_string();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(90)).build()?;
    let template = sample::typical_case();
    let payload_size = sdx_codec::json::canonical(&sample::typical_forward()).len();
    eprintln!("forwarding {count} cases through {base} …");
    let forward = {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        move |i: usize| {
            let (http, base, token, case) = (http.clone(), base.clone(), token.clone(), varied_case(&template, i));
            async move {
                let started = Instant::now();
                let r = http
                    .post(format!("{base}/cases?waitForReceipt=60"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({ "case": case }))
                    .send()
                    .await
                    .with_context(|| format!("POST {base}/cases"))?;
                let status = r.status();
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                if status != 201 {
                    bail!("POST {base}/cases answered {status}: {}", v["detail"]);
                }
                if v["delivered"] != true {
                    bail!("no signed receipt for case {} within 60 s", case.case_id);
                }
                anyhow::Ok(started.elapsed().as_secs_f64() * 1e3)
            }
        }
    };
    let lat = Arc::new(std::sync::Mutex::new(Vec::with_capacity(count)));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    match rate {
        Some(rate) => {
            for i in 0..count {
                tokio::time::sleep_until((t0 + Duration::from_secs_f64(i as f64 / rate)).into()).await;
                let (f, lat) = (forward(i), lat.clone());
                tasks.push(tokio::spawn(async move {
                    let ms = f.await?;
                    lat.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push(ms);
                    anyhow::Ok(())
                }));
            }
        }
        None => {
            let next = Arc::new(AtomicUsize::new(0));
            for _ in 0..concurrency {
                let (next, lat, forward) = (next.clone(), lat.clone(), forward.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return anyhow::Ok(());
                        }
                        let ms = forward(i).await?;
                        lat.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push(ms);
                    }
                }));
            }
        }
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = t0.elapsed();
    let mut lat = std::mem::take(&mut *lat.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    lat.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&lat, 0.50), percentile(&lat, 0.99));

    let cert = sdx_node::pki::NodeCert::from_pem(&read(&t.tls_cert)?, &read(&t.tls_key)?)?;
    let client = tls::http_client(&cert, &read(&t.ca)?)?;
    let url = format!("{}{NOOP_PATH}", t.peer.trim_end_matches('/'));
    let baseline_per_s = baseline(client, url, payload_size, concurrency, count.max(2000)).await?;
    // The nodes are other processes: their CPU is not this process's.
    let figures = Figures { count, concurrency, rate, elapsed, p50, p99, baseline_per_s, payload_size, cpu: None };
    figures.report(&format!("forwarded and acknowledged through {base}"), json, serde_json::json!({ "target": base }));
    Ok(Outcome::Valid)
}

async fn run(opts: ForwardOptions) -> Result<Outcome> {
    let ForwardOptions { count, concurrency, json, rate, preload: preload_n, database_url, target } = opts;
    if let Some(t) = target {
        if preload_n > 0 || database_url.is_some() {
            bail!("--preload and --database-url apply to the nodes the benchmark starts, not to running ones (--api)");
        }
        return run_against(t, count, concurrency, json, rate).await;
    }
    let dir = scratch_dir("sdx-bench")?;
    // A schema pair of its own per run on PostgreSQL (left on the server, named in the output).
    let prefix = format!("sdx_bench_{}", &MessageId::new_random().to_string()[..8]);
    let pair = Pair::start(&dir, database_url.as_deref(), &prefix).await?;
    let storage = if database_url.is_some() { "postgres" } else { "sqlite" };
    if database_url.is_some() {
        eprintln!("PostgreSQL schemas {prefix}_mila and {prefix}_bela");
    }
    let mut sample_ids = if preload_n > 0 { preload(&pair, preload_n).await? } else { Vec::new() };
    let template = sample::typical_case();
    let payload_size = sdx_codec::json::canonical(&sample::typical_forward()).len();
    match rate {
        Some(r) => eprintln!("forwarding {count} cases ({payload_size} bytes canonical JSON each), {r} per second…"),
        None => {
            eprintln!("forwarding {count} cases ({payload_size} bytes canonical JSON each), {concurrency} in flight…")
        }
    }

    let starts = Arc::new(std::sync::Mutex::new(Vec::with_capacity(count)));
    let cpu0 = process_cpu();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    if let Some(rate) = rate {
        // Open loop: case i starts at i / rate seconds, whatever happened to the others.
        for i in 0..count {
            tokio::time::sleep_until((t0 + Duration::from_secs_f64(i as f64 / rate)).into()).await;
            let (mila, starts, case) = (pair.mila.clone(), starts.clone(), varied_case(&template, i));
            tasks.push(tokio::spawn(async move { forward_one(&mila, case, &starts).await }));
        }
    }
    // Closed loop: `concurrency` tasks take the next case until `count` are committed to MiLa's outbox.
    let next = Arc::new(AtomicUsize::new(0));
    for _ in 0..if rate.is_some() { 0 } else { concurrency } {
        let (mila, next, starts, template) = (pair.mila.clone(), next.clone(), starts.clone(), template.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(());
                }
                // Keep `concurrency` cases in flight end to end: each waits for its signed receipt.
                forward_one(&mila, varied_case(&template, i), &starts).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    // Everything delivered?
    let elapsed = t0.elapsed();
    let cpu = process_cpu().zip(cpu0).map(|(now, before)| now.saturating_sub(before));
    let pending = pair.mila.store().list_deliveries(Some(DeliveryState::Pending), 1).await?;
    if !pending.is_empty() {
        bail!("deliveries still pending at the end");
    }

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
    sample_ids.extend(starts.iter().map(|(id, _)| *id).take(1000));
    let (lookup_us, query_ms) = lookups(&pair, &sample_ids).await?;

    // Baseline: a no-op POST of the same size on the same server stack, same concurrency.
    let cert = pair.ca.issue_node(&OrgKey::parse(sample::MILA)?, &[])?;
    let client = tls::http_client(&cert, pair.ca.cert_pem())?;
    let url = format!("https://localhost:{}{NOOP_PATH}", pair.bela_port);
    let baseline_per_s = baseline(client, url, payload_size, concurrency, count.max(2000)).await?;
    pair.stop().await;
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "with {} cases stored: case lookup {lookup_us:.0} µs, query page of 100 {query_ms:.1} ms (medians)",
        preload_n + count
    );
    let figures = Figures { count, concurrency, rate, elapsed, p50, p99, baseline_per_s, payload_size, cpu };
    figures.report(
        "forwarded and acknowledged",
        json,
        serde_json::json!({
            "preloaded": preload_n, "storage": storage,
            "lookup_us": lookup_us.round(), "query_ms": (query_ms * 10.0).round() / 10.0,
        }),
    );
    Ok(Outcome::Valid)
}
