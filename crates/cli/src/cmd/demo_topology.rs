//! `sdx demo --topology hub` (issue 9): a federation on loopback in which every member is reached through one hub
//! (`role = "hub"`, mutual TLS from a temporary federation PKI, messages encrypted end to end to their readers)
//! and every peer and responsibility comes from one signed directory. It runs, through the members' local APIs:
//! a portal submits a citizen's request, the directory routes it to the MiLa (1st level); the MiLa escalates it
//! by directory lookup (2nd level); the first candidate rejects it as not responsible and the case is rerouted to
//! the next; the BeLa escalates to its vendor (3rd level); the vendor's solution flows back along the chain to
//! the portal; the BeLa's maintenance notice reaches the portal's Atom feed. It exits 0 only if every party's
//! view is consistent and the hub kept nothing of the case.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use sdx_crypto::{Alg, PrivateKey};
use sdx_model::{CaseId, OrgKey, sample};
use sdx_node::app::App;
use sdx_node::pki::Ca;
use sdx_node::settings::{DirectorySettings, NodeRole, PeerSettings, Settings, StorageSettings};

use crate::Outcome;
use crate::cmd::init;
use crate::cmd::pair::{demo_settings, free_port, node_material, scratch_dir};

/// The Wohngeld service (LeiKa) every case of the demo is about.
const LEIKA: &str = "99107004017000";
/// A region in Schleswig-Holstein (Flensburg).
const REGION: &str = "010020000000";
/// The directory authority.
const AUTHORITY: &str = "dir:demo";
/// The local APIs' bearer token (client `ticket-system`).
const TOKEN: &str = "sdx-demo-topology-token";

/// One organisation of the demo.
struct Spec {
    name: &'static str,
    key: &'static str,
    display: &'static str,
    roles: &'static [&'static str],
}

const HUB: Spec = Spec { name: "hub", key: "hub:demo", display: "SDX-Hub (Demo)", roles: &["hub"] };
const PORTAL: Spec = Spec {
    name: "portal",
    key: "ptl:sh-portal",
    display: "Serviceportal Schleswig-Holstein",
    roles: &["portal", "member"],
};
const MILA: Spec = Spec {
    name: "mila",
    key: "psw:01000115",
    display: "115-Servicecenter Schleswig-Holstein",
    roles: &["serviceDesk", "member"],
};
const FIRST: Spec = Spec {
    name: "dataport",
    key: "psw:01000002",
    display: "Dataport, 2nd level Schleswig-Holstein",
    roles: &["member"],
};
const BELA: Spec = Spec {
    name: "hzd",
    key: "psw:06000042",
    display: "Hessische Zentrale für Datenverarbeitung (Wohngeld)",
    roles: &["member"],
};
const VENDOR: Spec = Spec {
    name: "vendor",
    key: "ven:wohngeld-fv",
    display: "Hersteller Fachverfahren Wohngeld",
    roles: &["member", "vendor"],
};
const MEMBERS: [&Spec; 5] = [&PORTAL, &MILA, &FIRST, &BELA, &VENDOR];

/// A started node and its local API.
struct Node {
    spec: &'static Spec,
    api: String,
    dir: PathBuf,
    engine: sdx_node::engine::Engine<sdx_store::AnyStore>,
}

/// `sdx demo --topology hub` or `federation`, on SQLite (a file per node) or, with `database_url`, on PostgreSQL (a
/// schema `sdx_topo_<node>` per node).
pub fn demo(topology: &str, data_dir: Option<PathBuf>, database_url: Option<String>) -> Result<Outcome> {
    if !matches!(topology, "hub" | "federation") {
        bail!("unknown topology `{topology}` (known: hub, federation)");
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(run(topology, data_dir, database_url))
}

async fn run(topology: &str, data_dir: Option<PathBuf>, database_url: Option<String>) -> Result<Outcome> {
    // The nodes' errors (a store that failed, a delivery given up) on stderr; SDX_LOG sets more.
    let filter = tracing_subscriber::EnvFilter::try_from_env("SDX_LOG").unwrap_or_else(|_| "error".into());
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).try_init();
    let dir = match data_dir {
        Some(d) => {
            std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
            d
        }
        None => scratch_dir(&format!("sdx-demo-{topology}"))?,
    };
    let t0 = Instant::now();
    let (members, responsibilities): (Vec<&'static Spec>, Vec<Value>) = if topology == "hub" {
        let duty = |level: &str, region: &str, org: &str, rank: u32| json!({"services": [{"leikaKey": LEIKA}], "regions": [region], "level": level, "organisation": org, "rank": rank});
        (
            MEMBERS.to_vec(),
            vec![
                duty("firstLevel", "01", MILA.key, 0),
                duty("secondLevel", "01", FIRST.key, 0),
                duty("secondLevel", "01", BELA.key, 1),
                duty("secondLevel", "nationwide", BELA.key, 0),
                duty("thirdLevel", "nationwide", VENDOR.key, 0),
            ],
        )
    } else {
        federation::members()
    };
    println!(
        "== setting up in {}: federation CA, a signed directory, a hub and {} members behind it",
        dir.display(),
        members.len()
    );
    let f = Federation::start(&dir, database_url.as_deref(), &members, responsibilities).await?;
    let storage = if database_url.is_some() { "PostgreSQL, a schema per node" } else { "SQLite, a file per node" };
    println!("   set up in {:.1} s ({storage})", t0.elapsed().as_secs_f64());
    let result =
        if topology == "hub" { scenario(&f.nodes, Instant::now()).await } else { federation::scenario(&f.nodes).await };
    f.stop().await;
    match result {
        Ok(()) => {
            println!("== every party's view is consistent; files in {}", dir.display());
            Ok(Outcome::Valid)
        }
        Err(e) => {
            println!("== FAILED: {e:#}");
            Ok(Outcome::Invalid)
        }
    }
}

/// A free port for a peer endpoint, below the kernel's ephemeral range (32768 and up), so that the local APIs the
/// nodes bind to port 0 meanwhile cannot take it before its node starts; not one of `taken` (chosen for the other
/// members, whose nodes do not hold them yet).
fn peer_port(taken: &[u16]) -> Result<u16> {
    for _ in 0..200 {
        let port = 20_000 + (free_port()? % 12_000);
        if !taken.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port between 20000 and 32000")
}

/// `sdx bench hub`: the same two members (MiLa, BeLa) once bilateral and once behind the hub, in one run: `count`
/// cases forwarded with `concurrency` in flight, each timed from the forward to its stored signed receipt.
pub fn bench_hub(count: usize, concurrency: usize, json: bool) -> Result<Outcome> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async {
        let mut results = Vec::new();
        let mut hub_cpu = Duration::ZERO;
        // Bilateral; through a hub in this process; through a hub in a process of its own, its CPU time measured.
        for (behind_hub, hub_process) in [(false, false), (true, false), (true, true)] {
            let dir = scratch_dir("sdx-bench-hub")?;
            let duty = json!({"services": [{"leikaKey": LEIKA}], "regions": ["nationwide"], "level": "secondLevel",
                "organisation": BELA.key});
            let f =
                Federation::start_with(&dir, None, &[&MILA, &BELA], vec![duty], behind_hub, hub_process).await?;
            let mila = f.nodes.iter().find(|n| n.spec.key == MILA.key).context("mila")?.engine.clone();
            let pid = f.hub_process.as_ref().map(std::process::Child::id);
            let before = pid.map(cpu_time).transpose()?;
            let measured = forward_timed(&mila, count, concurrency).await;
            if let (Some(pid), Some(before)) = (pid, before) {
                hub_cpu = cpu_time(pid)?.saturating_sub(before);
            }
            f.stop().await;
            let _ = std::fs::remove_dir_all(&dir);
            results.push(measured?);
        }
        let [(bi_rate, bi_p50, bi_p99), (hub_rate, hub_p50, hub_p99), (own_rate, own_p50, own_p99)] =
            [results[0], results[1], results[2]];
        let hub_ms_per_msg = hub_cpu.as_secs_f64() * 1000.0 / count.max(1) as f64;
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as f64;
        let capacity = if hub_ms_per_msg > 0.0 { cores * 1000.0 / hub_ms_per_msg } else { 0.0 };
        println!("{count} cases, {concurrency} in flight, MiLa → BeLa, forward → stored signed receipt:");
        println!("  bilateral:        {bi_rate:.0} cases/s, p50 {bi_p50:.1} ms, p99 {bi_p99:.1} ms");
        println!("  through the hub:  {hub_rate:.0} cases/s, p50 {hub_p50:.1} ms, p99 {hub_p99:.1} ms (end-to-end encrypted)");
        println!("  the hub adds {:.1} ms at p50", hub_p50 - bi_p50);
        println!("  hub in a process of its own: {own_rate:.0} cases/s, p50 {own_p50:.1} ms, p99 {own_p99:.1} ms");
        println!(
            "  the hub's CPU: {:.2} s for {count} messages = {hub_ms_per_msg:.3} ms each → it alone routes ≈ {capacity:.0} messages/s on {cores:.0} cores",
            hub_cpu.as_secs_f64()
        );
        if json {
            println!(
                "{}",
                json!({"count": count, "concurrency": concurrency, "bilateral_per_s": bi_rate, "bilateral_p50_ms": bi_p50,
                    "bilateral_p99_ms": bi_p99, "hub_per_s": hub_rate, "hub_p50_ms": hub_p50, "hub_p99_ms": hub_p99,
                    "added_p50_ms": hub_p50 - bi_p50, "hub_process_per_s": own_rate, "hub_process_p50_ms": own_p50,
                    "hub_cpu_ms_per_message": hub_ms_per_msg, "hub_capacity_per_s": capacity, "cores": cores})
            );
        }
        Ok(Outcome::Valid)
    })
}

/// Forward `count` copies of the sample case from `mila` with `concurrency` in flight; (cases/s, p50 ms, p99 ms).
async fn forward_timed(
    mila: &sdx_node::engine::Engine<sdx_store::AnyStore>,
    count: usize,
    concurrency: usize,
) -> Result<(f64, f64, f64)> {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (mila, next) = (mila.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                let mut case = sample::typical_case();
                case.case_id = CaseId::new_random();
                let started = Instant::now();
                let sent = mila.forward(case, None).await?;
                if !mila.wait_delivered(sent.message_id, Duration::from_secs(60)).await? {
                    bail!("no receipt for {} within 60 s", sent.message_id);
                }
                lat.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let at = |p: f64| all.get(((all.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
    Ok((all.len() as f64 / elapsed, at(0.5), at(0.99)))
}

/// Running nodes: the members and their hub.
struct Federation {
    nodes: Vec<Node>,
    stop: tokio::sync::watch::Sender<bool>,
    runs: Vec<tokio::task::JoinHandle<Result<(), sdx_node::app::AppError>>>,
    /// The hub as a process of its own (`sdx serve`), when started so ([`Federation::start_with`]).
    hub_process: Option<std::process::Child>,
}

impl Federation {
    /// Write PKI, keys, a signed directory (every member behind the hub, `responsibilities`) and settings into
    /// `dir`, and start the members and then the hub (which knows where its members' nodes are).
    async fn start(
        dir: &Path,
        database_url: Option<&str>,
        members: &[&'static Spec],
        responsibilities: Vec<Value>,
    ) -> Result<Federation> {
        Federation::start_with(dir, database_url, members, responsibilities, true, false).await
    }

    /// [`Federation::start`]; with `behind_hub` false the members reach each other directly (bilateral; the hub
    /// runs but relays nothing); with `hub_process` the hub runs as `sdx serve` in a process of its own (not in
    /// [`Federation::nodes`]).
    async fn start_with(
        dir: &Path,
        database_url: Option<&str>,
        members: &[&'static Spec],
        responsibilities: Vec<Value>,
        behind_hub: bool,
        hub_process: bool,
    ) -> Result<Federation> {
        let ca = Ca::generate("SDX demo federation")?;
        let authority = PrivateKey::generate(Alg::Es256)?;
        let authority_jwk = dir.join("authority.jwk");
        init::write_file(&authority_jwk, authority.public_key(Alg::Es256)?.to_jwk_string().as_bytes(), false, true)?;
        let all: Vec<&'static Spec> = members.iter().copied().chain(std::iter::once(&HUB)).collect();
        let mut keys = Vec::new();
        for s in &all {
            let signing = PrivateKey::generate(Alg::Es256)?;
            let encryption = if s.roles.contains(&"hub") { None } else { Some(PrivateKey::generate(Alg::RsaOaep256)?) };
            let taken: Vec<u16> = keys.iter().map(|k: &(_, _, u16)| k.2).collect();
            keys.push((signing, encryption, peer_port(&taken)?));
        }
        let mut organisations = Vec::new();
        for (s, (signing, encryption, port)) in all.iter().zip(&keys) {
            let mut o = json!({"key": s.key, "name": s.display, "roles": s.roles,
                "signingKeys": [signing.public_key(Alg::Es256)?.to_jwk()]});
            if let Some(e) = encryption {
                o["endpoint"] =
                    if behind_hub { json!({"viaHub": HUB.key}) } else { json!(format!("https://localhost:{port}")) };
                o["encryptionKeys"] = json!([e.public_key(Alg::RsaOaep256)?.to_jwk()]);
            } else {
                o["endpoint"] = json!(format!("https://localhost:{port}"));
            }
            organisations.push(o);
        }
        let now = sdx_model::Timestamp::now();
        let expires =
            sdx_model::Timestamp::from_offset_date_time(now.as_offset_date_time() + Duration::from_secs(30 * 86_400));
        let document = json!({
            "schemaVersion": "1.0", "version": 1, "issuedAt": now, "expiresAt": expires, "issuer": AUTHORITY,
            "organisations": organisations, "responsibilities": responsibilities,
        });
        let directory = sdx_directory::Directory::from_json(document.to_string().as_bytes())?;
        let directory_file = dir.join("directory.jws");
        init::write_file(&directory_file, sdx_directory::sign(&directory, &authority)?.as_bytes(), false, true)?;

        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut nodes: Vec<Node> = Vec::new();
        let mut runs = Vec::new();
        let mut hub_child = None;
        let member_peers: Vec<PeerSettings> = all
            .iter()
            .zip(&keys)
            .filter(|(s, _)| s.key != HUB.key)
            .map(|(s, (_, _, port))| {
                Ok(PeerSettings {
                    org: OrgKey::parse(s.key)?,
                    name: Some(s.display.into()),
                    url: format!("https://localhost:{port}"),
                    signing_key: PathBuf::from("..").join(s.name).join(init::SIGNING_JWK_FILE),
                })
            })
            .collect::<Result<_>>()?;
        for (s, (signing, encryption, port)) in all.iter().zip(keys) {
            let d = node_material(dir, s.name, &OrgKey::parse(s.key)?, &ca, &signing)?;
            let storage = match database_url {
                Some(url) => StorageSettings { url: url.to_string(), schema: Some(format!("sdx_topo_{}", s.name)) },
                None => StorageSettings { url: "sqlite://node.db?mode=rwc".into(), schema: None },
            };
            let mut settings = node_settings(s, port, storage, &directory_file, &authority_jwk)?;
            match encryption {
                Some(e) => {
                    init::write_file(&d.join("encryption.pem"), e.to_pkcs8_pem().as_bytes(), true, true)?;
                    settings.keys.encryption_key = Some(PathBuf::from("encryption.pem"));
                }
                None => {
                    settings.node.role = NodeRole::Hub;
                    settings.peers = member_peers.clone();
                }
            }
            let header = format!("Settings of the {} node of `sdx demo --topology` (replaced on every run).", s.name);
            init::write_settings(&d.join(init::SETTINGS_FILE), &settings, &header, true)?;
            if hub_process && s.key == HUB.key {
                hub_child = Some(serve_process(&d.join(init::SETTINGS_FILE))?);
                println!("   {:<8} {:<16} {} — peer port {port}, a process of its own", s.name, s.key, s.display);
                continue;
            }
            settings.resolve_paths(&std::path::absolute(&d)?)?;
            settings.check()?;
            let app = App::build(settings).await.with_context(|| format!("starting the {} node", s.name))?;
            let api = format!("http://{}/api/v1", app.api_addr()?);
            let engine = app.engine().clone();
            let mut rx = stopped.clone();
            runs.push(tokio::spawn(app.run_until_stopped(async move {
                let _ = rx.wait_for(|s| *s).await;
            })));
            println!("   {:<8} {:<16} {} — peer port {port}", s.name, s.key, s.display);
            nodes.push(Node { spec: s, api, dir: d, engine });
        }
        Ok(Federation { nodes, stop, runs, hub_process: hub_child })
    }

    /// Stop every node and wait for it.
    async fn stop(mut self) {
        let _ = self.stop.send(true);
        for r in std::mem::take(&mut self.runs) {
            let _ = r.await;
        }
        if let Some(mut c) = self.hub_process.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Federation {
    fn drop(&mut self) {
        if let Some(mut c) = self.hub_process.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Start `sdx serve --config settings` (this executable) and wait until both its listeners are bound (the two
/// lines it prints). Its log goes to `serve.log` next to the settings.
fn serve_process(settings: &Path) -> Result<std::process::Child> {
    use std::io::BufRead as _;
    let log = settings.with_file_name("serve.log");
    let log = std::fs::File::create(&log).with_context(|| format!("cannot write {}", log.display()))?;
    let mut child = std::process::Command::new(std::env::current_exe().context("this executable")?)
        .arg("serve")
        .arg("--config")
        .arg(settings)
        .env("SDX_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting sdx serve")?;
    let mut out = std::io::BufReader::new(child.stdout.take().context("its stdout")?);
    let mut lines = String::new();
    for _ in 0..2 {
        if out.read_line(&mut lines)? == 0 {
            let _ = child.kill();
            let _ = child.wait();
            bail!("sdx serve --config {} did not start (see serve.log next to it)", settings.display());
        }
    }
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Ok(child)
}

/// CPU time (user and system) a process has used so far, from `/proc/<pid>/stat`.
pub(crate) fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).context("reading /proc/<pid>/stat")?;
    // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).context("a /proc/<pid>/stat line")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).context("utime/stime");
    // Fields 14 and 15 of the line are the 12th and 13th after the name.
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(total as f64 / clock_ticks_per_second()))
}

/// `sysconf(_SC_CLK_TCK)`, by `getconf` once per process (100 on Linux unless configured otherwise).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// A member's local API.
struct Api<'a> {
    node: &'a Node,
    http: reqwest::Client,
}

impl Api<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Result<(u16, Value)> {
        let mut rq = self.http.request(method.clone(), format!("{}{path}", self.node.api)).bearer_auth(TOKEN);
        if let Some(b) = body {
            rq = rq.json(b);
        }
        let r = rq.send().await.with_context(|| format!("{method} {path} at {}", self.node.spec.name))?;
        let status = r.status().as_u16();
        Ok((status, serde_json::from_slice(&r.bytes().await?).unwrap_or(Value::Null)))
    }

    /// POST and expect `want`.
    async fn post(&self, path: &str, body: &Value, want: u16) -> Result<Value> {
        match self.call(reqwest::Method::POST, path, Some(body)).await? {
            (s, v) if s == want => Ok(v),
            (s, v) => bail!("{}: POST {path} answered {s}: {}", self.node.spec.name, v["detail"]),
        }
    }

    /// Wait (up to 30 s) until the case `id` here satisfies `ok`; the case view.
    async fn until(&self, id: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Result<Value> {
        let t = Instant::now();
        loop {
            let (s, v) = self.call(reqwest::Method::GET, &format!("/cases/{id}"), None).await?;
            if s == 200 && ok(&v["case"]) {
                return Ok(v);
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!("{}: {what} not seen within 30 s (case {id}: {})", self.node.spec.name, v["case"]["status"]);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn step(t0: Instant, text: &str) {
    println!("   {:>7.2} s  {text}", t0.elapsed().as_secs_f64());
}

async fn scenario(nodes: &[Node], t0: Instant) -> Result<()> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let api = |spec: &Spec| -> Result<Api<'_>> {
        let node = nodes.iter().find(|n| n.spec.key == spec.key).context("node")?;
        Ok(Api { node, http: http.clone() })
    };
    let (portal, mila, first, bela, vendor) = (api(&PORTAL)?, api(&MILA)?, api(&FIRST)?, api(&BELA)?, api(&VENDOR)?);
    println!("== a citizen's request, through the hub");

    // 1. The portal submits the citizen's request; the directory routes it to the MiLa (1st level).
    let secret =
        format!("Antrag {} — Wohngeld-Online bricht beim Hochladen der Mietbescheinigung ab.", CaseId::new_random());
    let case = portal_case(&secret)?;
    let v = portal
        .post("/cases?waitForReceipt=20", &json!({"case": case, "note": "Anfrage über das Serviceportal"}), 201)
        .await?;
    let id = v["case"]["caseId"].as_str().context("caseId")?.to_string();
    if v["routing"]["assignee"] != MILA.key || v["delivered"] != true {
        bail!("the portal's request went to {} (delivered: {})", v["routing"]["assignee"], v["delivered"]);
    }
    step(t0, &format!("portal → MiLa {}: case {id} routed by the directory (1st level, region {REGION})", MILA.key));
    mila.until(&id, "the portal's request", |c| c["status"] == "new").await?;

    // 2. The MiLa escalates by directory lookup (2nd level): the first candidate is Dataport.
    let e = mila
        .post(&format!("/cases/{id}/escalations"), &json!({"note": "Bitte prüfen: Upload bricht ab."}), 201)
        .await?;
    let child = e["child"]["case"]["caseId"].as_str().context("child")?.to_string();
    if e["child"]["case"]["assignee"] != FIRST.key {
        bail!("the escalation went to {}, not the first candidate", e["child"]["case"]["assignee"]);
    }
    step(t0, &format!("MiLa escalates to {} by directory lookup (2nd level): case {child}", FIRST.key));

    // 3. Dataport rejects as not responsible; the MiLa's node reroutes to the next candidate.
    first.until(&child, "the escalation at Dataport", |c| c["status"] == "new").await?;
    let reject =
        json!({"reject": {"revision": 0, "reason": "notResponsible", "text": "Wohngeld betreibt die HZD (EfA)."}});
    first.post(&format!("/cases/{child}/changes"), &reject, 200).await?;
    step(t0, &format!("{} rejects it as not responsible", FIRST.key));
    bela.until(&child, "the rerouted case at the BeLa", |c| c["status"] == "new").await?;
    step(t0, &format!("rerouted to the next candidate, BeLa {}", BELA.key));

    // 4. The BeLa escalates to its vendor (3rd level).
    let e =
        bela.post(&format!("/cases/{child}/escalations"), &json!({"note": "Fehler im Fachverfahren?"}), 201).await?;
    let third = e["child"]["case"]["caseId"].as_str().context("child")?.to_string();
    let at_vendor = vendor.until(&third, "the escalation at the vendor", |c| c["status"] == "new").await?;
    if !at_vendor["case"]["requester"].is_null() {
        bail!("the vendor got the citizen's data");
    }
    step(t0, &format!("BeLa escalates to the vendor {} (3rd level): case {third}, without the requester", VENDOR.key));

    // 5. The vendor resolves; the solution flows back along the chain to the portal.
    let text = "Fehler im Upload-Modul behoben (Version 2.4.1); bitte erneut hochladen.";
    let resolve = json!({"resolve": {"revision": 0, "solution": {"code": "fixed", "text": text,
        "resolvedAt": sdx_model::Timestamp::now(), "resolvedBy": VENDOR.key}}});
    vendor.post(&format!("/cases/{third}/changes"), &resolve, 200).await?;
    step(t0, "the vendor resolves its case");
    bela.until(&child, "the solution at the BeLa", |c| c["status"] == "resolved").await?;
    mila.until(&child, "the solution at the MiLa (escalation)", |c| c["status"] == "resolved").await?;
    mila.until(&id, "the solution at the MiLa (request)", |c| c["status"] == "resolved").await?;
    let at_portal = portal.until(&id, "the solution at the portal", |c| c["status"] == "resolved").await?;
    if at_portal["case"]["solution"]["text"] != text {
        bail!("the portal shows another solution: {}", at_portal["case"]["solution"]);
    }
    step(t0, "status flowed back: vendor → BeLa → MiLa → portal, the vendor's solution text unchanged");

    // 6. A maintenance notice of the BeLa reaches the portal's feed.
    let notice = json!({"noticeType": "maintenance", "services": [{"leikaKey": LEIKA, "name": "Wohngeld"}],
        "regions": ["01"], "startsAt": sdx_model::Timestamp::now(), "title": "Wartung Wohngeld-Online",
        "text": "Am Samstag von 8 bis 12 Uhr ist Wohngeld-Online nicht erreichbar."});
    let p = bela.post("/notices", &notice, 201).await?;
    if !p["recipients"].as_array().is_some_and(|r| r.iter().any(|o| o == PORTAL.key)) {
        bail!("the notice is not addressed to the portal: {}", p["recipients"]);
    }
    let feed = portal.node.api.replace("/api/v1", "/notices.atom");
    let t = Instant::now();
    loop {
        let atom = reqwest::get(&feed).await?.text().await?;
        if atom.contains("Wartung Wohngeld-Online") {
            break;
        }
        if t.elapsed() > Duration::from_secs(30) {
            bail!("the notice did not reach the portal's feed");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    step(t0, &format!("BeLa's maintenance notice is in the portal's feed ({feed})"));

    // 7. Every view; the hub kept nothing.
    let views = [
        (&portal, id.as_str(), "resolved"),
        (&mila, id.as_str(), "resolved"),
        (&mila, child.as_str(), "resolved"),
        (&first, child.as_str(), "rejected"),
        (&bela, child.as_str(), "resolved"),
        (&bela, third.as_str(), "resolved"),
        (&vendor, third.as_str(), "resolved"),
    ];
    for (a, case, status) in views {
        let (_, v) = a.call(reqwest::Method::GET, &format!("/cases/{case}"), None).await?;
        if v["case"]["status"] != status {
            bail!("{} holds case {case} as {}, not {status}", a.node.spec.name, v["case"]["status"]);
        }
    }
    let hub = nodes.iter().find(|n| n.spec.key == HUB.key).context("hub")?;
    for e in std::fs::read_dir(&hub.dir)? {
        let p = e?.path();
        if p.is_file() {
            let bytes = std::fs::read(&p)?;
            if bytes.windows(secret.len()).any(|w| w == secret.as_bytes())
                || bytes.windows(text.len()).any(|w| w == text.as_bytes())
            {
                bail!("the hub keeps case content in {}", p.display());
            }
        }
    }
    step(t0, "seven views agree; the hub's files hold no case content");
    Ok(())
}

/// The portal's request: the sample case as the portal's own (every claim in it the portal's).
fn portal_case(description: &str) -> Result<Value> {
    let mut c = serde_json::to_value(sample::typical_case())?;
    c["caseId"] = json!(CaseId::new_random());
    c["description"] = json!(description);
    c["region"] = json!(REGION);
    c["supportLevel"] = json!("firstLevel");
    c["channel"] = json!("portal");
    c["originator"] = json!(PORTAL.key);
    c["parties"] = json!([{"role": "portal", "organisation": PORTAL.key, "name": PORTAL.display}]);
    for s in c["statusHistory"].as_array_mut().context("statusHistory")? {
        s["changedBy"] = json!(PORTAL.key);
    }
    let o = c.as_object_mut().context("case")?;
    for k in ["assignee", "references", "journal", "attachments", "relatedCases", "solution"] {
        o.remove(k);
    }
    Ok(c)
}

/// A member's settings, as `sdx init` writes them, with the directory.
fn node_settings(
    s: &Spec,
    port: u16,
    storage: StorageSettings,
    directory: &Path,
    authority: &Path,
) -> Result<Settings> {
    let mut settings = demo_settings(OrgKey::parse(s.key)?, Some(s.display.into()), port, storage, TOKEN);
    settings.directory = Some(DirectorySettings {
        source: directory.display().to_string(),
        authority_keys: vec![authority.to_path_buf()],
        issuer: Some(OrgKey::parse(AUTHORITY)?),
        reload_s: 300,
        check_responsibility: false,
    });
    Ok(settings)
}

/// `sdx demo --topology federation`: the 16 Länder behind one hub, each responsible for Wohngeld at the second
/// level in its own region; cases between random pairs, routed by the directory, resolved by their assignees.
mod federation {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use anyhow::{Context, Result, bail};
    use serde_json::{Value, json};

    use sdx_model::{CaseId, sample};

    use super::{Api, HUB, LEIKA, Node, Spec};

    /// Cases per Land (each Land originates this many, to random other Länder).
    const CASES_PER_LAND: usize = 10;
    /// Requests in flight at a time.
    const IN_FLIGHT: usize = 16;

    const LAENDER: [&str; 16] = [
        "Schleswig-Holstein",
        "Hamburg",
        "Niedersachsen",
        "Bremen",
        "Nordrhein-Westfalen",
        "Hessen",
        "Rheinland-Pfalz",
        "Baden-Württemberg",
        "Bayern",
        "Saarland",
        "Berlin",
        "Brandenburg",
        "Mecklenburg-Vorpommern",
        "Sachsen",
        "Sachsen-Anhalt",
        "Thüringen",
    ];

    /// The 16 Land members and their responsibilities (Wohngeld, second level, the Land's ARS prefix).
    pub(super) fn members() -> (Vec<&'static Spec>, Vec<Value>) {
        let mut specs = Vec::new();
        let mut duties = Vec::new();
        for (i, name) in LAENDER.iter().enumerate() {
            let code = format!("{:02}", i + 1);
            let spec: &'static Spec = Box::leak(Box::new(Spec {
                name: Box::leak(format!("land{code}").into_boxed_str()),
                key: Box::leak(format!("psw:{code}000000").into_boxed_str()),
                display: Box::leak(format!("IT-Dienstleister {name}").into_boxed_str()),
                roles: &["member"],
            }));
            duties.push(json!({"services": [{"leikaKey": LEIKA}], "regions": [code], "level": "secondLevel",
                "organisation": spec.key}));
            specs.push(spec);
        }
        (specs, duties)
    }

    /// A case of Land `from` about a citizen in Land `to` (index 0–15), without assignee.
    fn case_of(from: &Spec, to: usize) -> Result<Value> {
        let mut c = serde_json::to_value(sample::typical_case())?;
        c["caseId"] = json!(CaseId::new_random());
        c["region"] = json!(format!("{:02}0000000000", to + 1));
        c["originator"] = json!(from.key);
        c["parties"] = json!([{"role": "mila", "organisation": from.key, "name": from.display}]);
        for s in c["statusHistory"].as_array_mut().context("statusHistory")? {
            s["changedBy"] = json!(from.key);
        }
        let o = c.as_object_mut().context("case")?;
        for k in ["assignee", "references", "journal", "attachments", "relatedCases", "solution", "requester"] {
            o.remove(k);
        }
        Ok(json!({"case": c}))
    }

    /// A small deterministic generator for the random pairs (xorshift; the pairs need no secrecy).
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    pub(super) async fn scenario(nodes: &[Node]) -> Result<()> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        let lands: Vec<Api<'_>> =
            nodes.iter().filter(|n| n.spec.key != HUB.key).map(|node| Api { node, http: http.clone() }).collect();
        let n = lands.len();
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ u64::from(std::process::id());
        let mut plan = Vec::new();
        for k in 0..n * CASES_PER_LAND {
            let from = k % n;
            let to = (from + 1 + (next(&mut seed) % (n as u64 - 1)) as usize) % n;
            plan.push((from, to, case_of(lands[from].node.spec, to)?));
        }
        println!(
            "== {} cases between random pairs of {n} Länder, through the hub, {IN_FLIGHT} requests at a time",
            plan.len()
        );

        // Forward: every case routed by the directory to its region's Land.
        let started = sdx_model::Timestamp::now();
        let t = Instant::now();
        let mut sent: Vec<(usize, usize, String)> = Vec::new();
        for chunk in plan.chunks(IN_FLIGHT) {
            let calls = chunk.iter().map(|(from, _, body)| lands[*from].post("/cases", body, 201));
            for ((from, to, _), answer) in chunk.iter().zip(futures_util::future::join_all(calls).await) {
                let v = answer?;
                if v["routing"]["assignee"] != lands[*to].node.spec.key {
                    bail!("a case for Land {} went to {}", to + 1, v["routing"]["assignee"]);
                }
                sent.push((*from, *to, v["case"]["caseId"].as_str().context("caseId")?.to_string()));
            }
        }
        for l in &lands {
            until_settled(l).await?;
        }
        let forward = t.elapsed();
        println!(
            "   {:>7.2} s  {} cases forwarded, each acknowledged by its Land's signed receipt ({:.0} cases/s)",
            forward.as_secs_f64(),
            sent.len(),
            sent.len() as f64 / forward.as_secs_f64()
        );

        // Once each: of this run's cases, every Land holds as assignee exactly those routed to it (a database
        // used before may hold cases of earlier runs: they are not counted).
        let mut expected: HashMap<usize, usize> = HashMap::new();
        for (_, to, _) in &sent {
            *expected.entry(*to).or_default() += 1;
        }
        let ours: std::collections::HashSet<&str> = sent.iter().map(|(_, _, id)| id.as_str()).collect();
        let since = started.to_string().replace('+', "%2B");
        for (j, l) in lands.iter().enumerate() {
            let (_, v) = l.call(reqwest::Method::GET, &format!("/cases?limit=500&updatedSince={since}"), None).await?;
            let held = v["items"].as_array().map_or(0, |items| {
                items
                    .iter()
                    .filter(|c| {
                        c["ourRole"] == "assignee" && c["case"]["caseId"].as_str().is_some_and(|id| ours.contains(id))
                    })
                    .count()
            });
            let want = expected.get(&j).copied().unwrap_or(0);
            if held != want {
                bail!("Land {} holds {held} cases as assignee, {want} were routed to it", j + 1);
            }
        }
        println!("              every case arrived once, at the Land of its region");

        // Back: each Land resolves its cases; every originator sees the solution.
        let t = Instant::now();
        for chunk in sent.chunks(IN_FLIGHT) {
            let lands = &lands;
            let calls = chunk.iter().map(|(_, to, id)| {
                let body = json!({"resolve": {"revision": 0, "solution": {"code": "fixed",
                    "text": format!("Gelöst in Land {}.", to + 1), "resolvedAt": sdx_model::Timestamp::now(),
                    "resolvedBy": lands[*to].node.spec.key}}});
                let path = format!("/cases/{id}/changes");
                async move { lands[*to].post(&path, &body, 200).await }
            });
            for r in futures_util::future::join_all(calls).await {
                r?;
            }
        }
        for l in &lands {
            until_settled(l).await?;
        }
        for (from, to, id) in &sent {
            let v = lands[*from].until(id, "the solution", |c| c["status"] == "resolved").await?;
            if v["case"]["solution"]["text"] != format!("Gelöst in Land {}.", to + 1) {
                bail!("case {id} at Land {} shows another solution", from + 1);
            }
        }
        let back = t.elapsed();
        println!(
            "   {:>7.2} s  {} resolutions flowed back to their originators ({:.0} cases/s)",
            back.as_secs_f64(),
            sent.len(),
            sent.len() as f64 / back.as_secs_f64()
        );
        Ok(())
    }

    /// Wait until `l` has no pending delivery.
    async fn until_settled(l: &Api<'_>) -> Result<()> {
        let t = Instant::now();
        loop {
            let (_, v) = l.call(reqwest::Method::GET, "/deliveries?state=pending&limit=1", None).await?;
            if v["items"].as_array().is_some_and(Vec::is_empty) {
                return Ok(());
            }
            if t.elapsed() > Duration::from_secs(120) {
                bail!("{}: deliveries still pending after 120 s", l.node.spec.name);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
