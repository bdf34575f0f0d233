//! `sdx demo --ticket-systems [MILA:BELA]`: two real ticket systems (default OTOBO for the MiLa, Redmine for the
//! BeLa; RT is the third choice) exchanging one ticket through two SDX nodes and two connectors. It starts what
//! is not running (`scripts/ticketsystems/*-start.sh`), runs the nodes (mutual TLS, temporary PKI) and the
//! connectors, then acts as the agents would — through the systems' own REST APIs only — and waits after each
//! step until the change is seen in the other system. It prints the path with times, exits 0 only if every
//! step was seen, and stops what it started.
//!
//! The parts are public for the tests (`crates/cli/tests/ticket_systems.rs`) and `sdx bench connectors`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sdx_connectors::config::ConnectorFile;
use sdx_connectors::secret::Secret;
use sdx_connectors::system::{Contact, NewComment, NewTicket, Ticket, TicketChange, TicketSystem};
use sdx_connectors::systems::AnySystem;
use sdx_model::sample::{BELA, MILA};
use sdx_model::{Coded, Status};

use crate::Outcome;
use crate::cmd::pair::{Pair, scratch_dir};

/// The systems a connector exists for.
pub const KINDS: &[&str] = &["otobo", "rt", "redmine"];

/// The example connector file of a system (the one `docs/connectors.md` shows).
pub fn example(kind: &str) -> Option<&'static str> {
    match kind {
        "otobo" => Some(include_str!("../../../connectors/examples/otobo.toml")),
        "rt" => Some(include_str!("../../../connectors/examples/rt.toml")),
        "redmine" => Some(include_str!("../../../connectors/examples/redmine.toml")),
        _ => None,
    }
}

/// `MILA:BELA`, checked.
pub fn parse_pair(s: &str) -> Result<(String, String)> {
    let (m, b) =
        s.split_once(':').with_context(|| format!("--ticket-systems: MILA:BELA, e.g. otobo:redmine, not {s}"))?;
    for k in [m, b] {
        if !KINDS.contains(&k) {
            bail!("--ticket-systems: `{k}` is not one of {}", KINDS.join(", "));
        }
    }
    if m == b {
        bail!("--ticket-systems: two different systems, one per organisation (not {m}:{b})");
    }
    Ok((m.to_string(), b.to_string()))
}

/// Where the start/stop scripts are: `SDX_TICKETSYSTEMS_SCRIPTS`, else this checkout's `scripts/ticketsystems`,
/// else `./scripts/ticketsystems`.
pub fn scripts_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SDX_TICKETSYSTEMS_SCRIPTS") {
        return PathBuf::from(d);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/ticketsystems");
    if built.is_dir() { built } else { PathBuf::from("scripts/ticketsystems") }
}

pub use sdx_connectors::scripts::ts_dir;

/// The `KEY=VALUE` lines of `<ts_dir>/<kind>.env`.
pub fn read_env(kind: &str) -> Result<BTreeMap<String, String>> {
    Ok(sdx_connectors::scripts::read_env(kind)?)
}

/// Run `<scripts>/<name>`, its output going to our stderr.
pub fn run_script(name: &str) -> Result<()> {
    let script = scripts_dir().join(name);
    let status = std::process::Command::new("bash")
        .arg(&script)
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !status.success() {
        bail!("{} failed ({status})", script.display());
    }
    Ok(())
}

/// The `[system]` table of a connector file for a running system, from its env file.
fn system_table(kind: &str, env: &BTreeMap<String, String>) -> Result<toml::Table> {
    let get = |k: &str| env.get(k).cloned().with_context(|| format!("{kind}.env has no {k}"));
    let mut t = toml::Table::new();
    t.insert("system".into(), kind.into());
    match kind {
        "otobo" => {
            t.insert("url".into(), get("OTOBO_URL")?.into());
            t.insert("user".into(), get("OTOBO_USER")?.into());
            t.insert("password".into(), get("OTOBO_PASSWORD")?.into());
            t.insert("case_field".into(), get("OTOBO_CASE_FIELD")?.into());
        }
        "rt" => {
            t.insert("url".into(), get("RT_URL")?.into());
            t.insert("token".into(), get("RT_TOKEN")?.into());
            t.insert("case_field".into(), get("RT_CASE_FIELD")?.into());
        }
        _ => {
            t.insert("url".into(), get("REDMINE_URL")?.into());
            t.insert("api_key".into(), get("REDMINE_API_KEY")?.into());
            t.insert("project".into(), get("REDMINE_PROJECT")?.into());
            t.insert("case_field".into(), get("REDMINE_CASE_FIELD")?.into());
        }
    }
    Ok(t)
}

/// The `[push]` table for a system whose start script set up a push (OTOBO, RT: `<KIND>_PUSH_URL`, `_TOKEN`).
fn push_table(kind: &str, env: &BTreeMap<String, String>) -> Option<toml::Table> {
    let prefix = kind.to_uppercase();
    let url = env.get(&format!("{prefix}_PUSH_URL"))?;
    let token = env.get(&format!("{prefix}_PUSH_TOKEN"))?;
    let listen = url.strip_prefix("http://")?.trim_end_matches('/');
    listen.parse::<std::net::SocketAddr>().ok()?;
    let mut t = toml::Table::new();
    t.insert("listen".into(), listen.into());
    t.insert("token".into(), token.as_str().into());
    Some(t)
}

/// The connector file of one side: the system's example, for organisation `org` handing over to `partner`,
/// reaching the running system as its env file says.
pub fn connector_file(kind: &str, name: &str, org: &str, partner: (&str, &str)) -> Result<(ConnectorFile, String)> {
    let text = example(kind).with_context(|| format!("no connector for {kind}"))?;
    let mut doc: toml::Table = toml::from_str(text).context("example connector file")?;
    doc.insert("name".into(), name.into());
    doc.insert("organisation".into(), org.into());
    let env = read_env(kind)?;
    doc.insert("system".into(), toml::Value::Table(system_table(kind, &env)?));
    if let Some(push) = push_table(kind, &env) {
        doc.insert("push".into(), toml::Value::Table(push));
    }
    if let Some(toml::Value::Array(hs)) = doc.get_mut("mapping").and_then(|m| m.get_mut("handover")) {
        for h in hs.iter_mut().filter_map(toml::Value::as_table_mut) {
            h.insert("partner".into(), partner.0.into());
            h.insert("partner_name".into(), partner.1.into());
        }
    }
    let text = toml::to_string(&doc)?;
    let file = ConnectorFile::parse(&text).map_err(anyhow::Error::msg)?;
    Ok((file, text))
}

/// Whether the system answers as its env file says.
async fn answers(kind: &str) -> bool {
    let Ok(env) = read_env(kind) else { return false };
    let Ok(table) = system_table(kind, &env) else { return false };
    let Ok(config) = toml::Value::Table(table).try_into::<sdx_connectors::systems::SystemConfig>() else {
        return false;
    };
    let Ok(system) = AnySystem::new(&config) else { return false };
    system.vocabulary().await.is_ok()
}

/// Start the systems that do not answer; returns those started (to stop them at the end).
pub async fn ensure_running(kinds: &[&str]) -> Result<Vec<String>> {
    let mut started = Vec::new();
    for kind in kinds {
        if answers(kind).await {
            println!("   {kind}: running already");
            continue;
        }
        println!("   {kind}: starting (scripts/ticketsystems/{kind}-start.sh)");
        let t = Instant::now();
        let k = kind.to_string();
        tokio::task::spawn_blocking(move || run_script(&format!("{k}-start.sh"))).await??;
        println!("   {kind}: up in {:.1} s", t.elapsed().as_secs_f64());
        started.push(kind.to_string());
    }
    Ok(started)
}

/// One side: its organisation, its connector file, its ticket system (as the agents' client).
pub struct Side {
    /// `MiLa` or `BeLa`.
    pub role: &'static str,
    /// `otobo`, `rt`, `redmine`.
    pub kind: String,
    /// The connector file.
    pub file: ConnectorFile,
    /// The system, as an agent's REST client.
    pub system: AnySystem,
}

impl Side {
    /// A side: the connector file `KIND-ROLE.toml` in `dir` (the system's example, for `org` handing over to
    /// `partner`) and the system as an agent's client.
    pub fn new(role: &'static str, kind: &str, org: &str, partner: (&str, &str), dir: &Path) -> Result<Side> {
        let name = format!("{kind}-{}", role.to_lowercase());
        let (file, text) = connector_file(kind, &name, org, partner)?;
        crate::cmd::init::write_file(&dir.join(format!("{name}.toml")), text.as_bytes(), true, true)?;
        let system = AnySystem::new(&file.system).map_err(|e| anyhow::anyhow!("{kind}: {e}"))?;
        Ok(Side { role, kind: kind.to_string(), file, system })
    }

    /// Whether the system tells its connector at once that a ticket changed (its start script set up a push).
    pub fn pushes(&self) -> bool {
        self.file.push.is_some()
    }

    /// The system's name of an SDX status.
    pub fn status(&self, s: Status) -> String {
        self.file.mapping.status_out(s).map(str::to_string).unwrap_or_default()
    }

    /// The queue whose tickets are handed to the partner.
    pub fn handover_queue(&self) -> String {
        self.file.mapping.handover.first().and_then(|h| h.queue.clone()).unwrap_or_default()
    }

    /// A ticket as an agent records it: in the incoming queue, status new, no fields.
    pub fn new_ticket(&self, title: impl Into<String>, description: impl Into<String>) -> NewTicket {
        NewTicket {
            title: title.into(),
            description: description.into(),
            status: self.status(Status::New),
            priority: None,
            queue: self.file.mapping.incoming.queue.clone(),
            kind: self.file.mapping.incoming.kind.clone(),
            requester: None,
            fields: BTreeMap::new(),
        }
    }

    /// Hand a ticket to the partner: move it into the handover queue.
    pub async fn hand_over(&self, ticket: &str) -> Result<()> {
        let change = TicketChange { queue: Some(self.handover_queue()), ..TicketChange::default() };
        Ok(self.system.update(ticket, &change).await?)
    }

    /// The case field's name.
    pub fn case_field(&self) -> &str {
        self.file.system.case_field()
    }

    /// Wait until the ticket satisfies `ok`; returns it and the time it took.
    pub async fn wait(&self, id: &str, timeout: Duration, ok: impl Fn(&Ticket) -> bool) -> Result<(Ticket, Duration)> {
        let t0 = Instant::now();
        loop {
            if let Ok(t) = self.system.get(id).await
                && ok(&t)
            {
                return Ok((t, t0.elapsed()));
            }
            if t0.elapsed() > timeout {
                bail!("{} ({}): not seen within {} s", self.role, self.kind, timeout.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until a ticket with the case id exists here.
    pub async fn wait_for_case(&self, case_id: &str, timeout: Duration) -> Result<(String, Duration)> {
        let t0 = Instant::now();
        loop {
            if let Ok(Some(id)) = self.system.find_by_field(self.case_field(), case_id).await {
                return Ok((id, t0.elapsed()));
            }
            if t0.elapsed() > timeout {
                bail!("{} ({}): no ticket for case {case_id} within {} s", self.role, self.kind, timeout.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Two nodes, two connectors, two systems.
pub struct Setup {
    /// The nodes.
    pub pair: Pair,
    /// The MiLa's side.
    pub mila: Side,
    /// The BeLa's side.
    pub bela: Side,
    stop: Arc<tokio::sync::Notify>,
    runs: Vec<tokio::task::JoinHandle<()>>,
}

impl Setup {
    /// Start both nodes (SQLite in `dir`) and both connectors, polling every `poll`, and with `push` taking the
    /// pushes of the systems that can push (OTOBO, RT; see [`Side::pushes`]).
    pub async fn start(dir: &Path, mila: &str, bela: &str, poll: Duration, push: bool) -> Result<Setup> {
        let mut s = Self::start_idle(dir, mila, bela).await?;
        for (side, api) in [(&s.mila, &s.pair.mila_api), (&s.bela, &s.pair.bela_api)] {
            let mut file = side.file.clone();
            file.poll_interval_ms = poll.as_millis() as u64;
            if !push {
                file.push = None;
            }
            let c = file.connector(Some((api, Secret::new(s.pair.api_token.clone())))).map_err(anyhow::Error::msg)?;
            let listener = file.bind_push().with_context(|| format!("{}: [push] listen", file.name))?;
            let stop = s.stop.clone();
            s.runs.push(tokio::spawn(async move {
                if let Err(e) = sdx_connectors::config::run(c, listener, stop.notified()).await {
                    tracing::error!(error = %e, "push listener failed");
                }
            }));
        }
        Ok(s)
    }

    /// Start both nodes, but no connector (tests run the connectors' rounds themselves, see [`Setup::connector`]).
    pub async fn start_idle(dir: &Path, mila: &str, bela: &str) -> Result<Setup> {
        let pair = Pair::start(dir, None, "sdx_demo_ts").await?;
        let m = Side::new("MiLa", mila, MILA, (BELA, "Hessische Zentrale für Datenverarbeitung"), dir)?;
        let b = Side::new("BeLa", bela, BELA, (MILA, "115-Servicecenter Schleswig-Holstein"), dir)?;
        Ok(Setup { pair, mila: m, bela: b, stop: Arc::new(tokio::sync::Notify::new()), runs: Vec::new() })
    }

    /// The node client a side's connector uses.
    pub fn node(&self, side: &Side) -> Result<sdx_connectors::node::NodeClient> {
        let api = if side.role == "MiLa" { &self.pair.mila_api } else { &self.pair.bela_api };
        sdx_connectors::node::NodeClient::new(api, Secret::new(self.pair.api_token.clone()), &side.file.name)
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// A side's connector over `system` (the side's own system, or one wrapped by a test).
    pub fn connector<S: TicketSystem>(&self, side: &Side, system: S) -> Result<sdx_connectors::sync::Connector<S>> {
        let me = sdx_model::OrgKey::parse(&side.file.organisation)?;
        Ok(sdx_connectors::sync::Connector::new(
            &side.file.name,
            me,
            system,
            self.node(side)?,
            side.file.mapping.clone(),
            side.case_field(),
            Duration::from_millis(side.file.poll_interval_ms),
        ))
    }

    /// Stop the connectors and the nodes.
    pub async fn stop(self) {
        self.stop.notify_waiters();
        for r in self.runs {
            r.abort();
            let _ = r.await;
        }
        self.pair.stop().await;
    }
}

/// The connectors' and nodes' warnings (a problem reported, a round retried) on stderr; `SDX_LOG` sets more.
fn log_to_stderr() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SDX_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).try_init();
}

/// How long the demo waits for each step.
const STEP: Duration = Duration::from_secs(60);

/// `sdx demo --ticket-systems MILA:BELA [--data-dir DIR]`
pub fn demo(pair: &str, data_dir: Option<PathBuf>) -> Result<Outcome> {
    let (mila, bela) = parse_pair(pair)?;
    // The connectors' and nodes' warnings (a problem reported, a round retried) on stderr; SDX_LOG sets more.
    log_to_stderr();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async move {
        let dir = match &data_dir {
            Some(d) => {
                std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
                d.clone()
            }
            None => scratch_dir("sdx-demo-ts")?,
        };
        println!("== ticket systems: MiLa {mila}, BeLa {bela}");
        let started = ensure_running(&[&mila, &bela]).await?;
        let result = async {
            println!("== two SDX nodes (mutual TLS, temporary PKI) and two connectors in {}", dir.display());
            let setup = Setup::start(&dir, &mila, &bela, Duration::from_secs(1), true).await?;
            let r = story(&setup).await;
            setup.stop().await;
            r
        }
        .await;
        for kind in started.iter().rev() {
            println!("== stopping {kind} (started by the demo)");
            let k = kind.clone();
            let _ = tokio::task::spawn_blocking(move || run_script(&format!("{k}-stop.sh"))).await;
        }
        match result {
            Ok(()) => {
                println!("\n✓ every step was seen in the other ticket system");
                if data_dir.is_none() {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                Ok(Outcome::Valid)
            }
            Err(e) => {
                println!("\n✗ {e:#}");
                Ok(Outcome::Invalid)
            }
        }
    })
}

fn step(n: u32, who: &str, what: &str) {
    println!("{n:>2}. {who}: {what}");
}

fn seen(what: &str, took: Duration) {
    println!("    ✓ {what} ({:.1} s)", took.as_secs_f64());
}

/// What the agents do, through the systems' REST APIs, each step checked in the other system.
pub async fn story(s: &Setup) -> Result<()> {
    let (m, b) = (&s.mila, &s.bela);
    let stamp = sdx_model::Timestamp::now().to_string();
    let t0 = Instant::now();
    println!("\n== use case 2.1: forward (MiLa {} → BeLa {})", m.kind, b.kind);
    step(1, "MiLa agent", "records a citizen's ticket and moves it to the handover queue");
    let ticket = m
        .system
        .create(&NewTicket {
            priority: m.file.mapping.priority_out(sdx_model::Priority::High).map(str::to_string),
            requester: Some(Contact {
                name: Some("Erika Mustermann".into()),
                email: Some("erika.mustermann@example.org".into()),
            }),
            ..m.new_ticket(
                format!("Wohngeld: Hochladen von Nachweisen schlägt fehl ({stamp})"),
                "Die Antragstellerin kann im Onlinedienst Wohngeld keine Nachweise hochladen.",
            )
        })
        .await?;
    m.hand_over(&ticket).await?;
    let (mt, took) = m.wait(&ticket, STEP, |t| t.fields.contains_key(m.case_field())).await?;
    let case_id = mt.fields[m.case_field()].clone();
    seen(&format!("MiLa's connector forwarded it: case {case_id} in the ticket's field"), took);
    let (bt, took) = b.wait_for_case(&case_id, STEP).await?;
    seen(&format!("BeLa's {} has ticket {bt} for it", b.kind), took);
    let (bticket, _) = b.wait(&bt, STEP, |_| true).await?;
    if !bticket.title.starts_with("Wohngeld: Hochladen") {
        bail!("BeLa's ticket has another title: {}", bticket.title);
    }
    let want_prio = b.file.mapping.priority_out(sdx_model::Priority::High).map(str::to_string);
    if want_prio.is_some() && bticket.priority != want_prio {
        bail!("BeLa's ticket priority {:?} is not the mapped {:?}", bticket.priority, want_prio);
    }
    seen(&format!("title, description and priority arrived mapped ({:?})", bticket.priority), Duration::ZERO);

    step(2, "BeLa agent", "starts work: status, a public reply and an internal note");
    b.system.update(&bt, &status_change(&b.status(Status::InProgress))).await?;
    comment(&b.system, &bt, true, "Wir prüfen das Hochladen von Nachweisen.").await?;
    comment(&b.system, &bt, false, "Intern: Log des Upload-Dienstes prüfen.").await?;
    let want = m.status(Status::InProgress);
    let (mt, took) =
        m.wait(&ticket, STEP, |t| t.status == want && t.comments.iter().any(|c| c.text.contains("Wir prüfen"))).await?;
    seen(&format!("MiLa's ticket shows `{want}` and BeLa's public reply"), took);
    if mt.comments.iter().any(|c| c.text.contains("Intern: Log")) {
        bail!("BeLa's internal note reached the MiLa");
    }
    seen("BeLa's internal note stayed at the BeLa", Duration::ZERO);

    println!("\n== use case 2.2: return (BeLa → MiLa)");
    step(3, "BeLa agent", "asks for information (waiting for the requester)");
    comment(&b.system, &bt, true, "Bitte teilen Sie mit, wie groß die Datei ist.").await?;
    b.system.update(&bt, &status_change(&b.status(Status::Pending))).await?;
    let want = m.status(Status::Pending);
    let (_, took) =
        m.wait(&ticket, STEP, |t| t.status == want && t.comments.iter().any(|c| c.text.contains("wie groß"))).await?;
    seen(&format!("MiLa's ticket shows `{want}` and the question"), took);

    step(4, "MiLa agent", "answers the question and sets the ticket back to work");
    comment(&m.system, &ticket, true, "Die Datei hat 12 MB.").await?;
    m.system.update(&ticket, &status_change(&m.status(Status::InProgress))).await?;
    let want = b.status(Status::InProgress);
    let (_, took) =
        b.wait(&bt, STEP, |t| t.status == want && t.comments.iter().any(|c| c.text.contains("12 MB"))).await?;
    seen(&format!("BeLa's ticket shows the answer and `{want}`"), took);

    step(5, "BeLa agent", "resolves with the solution");
    comment(&b.system, &bt, true, "Die Upload-Grenze wurde auf 20 MB erhöht.").await?;
    b.system.update(&bt, &status_change(&b.status(Status::Resolved))).await?;
    let want = m.status(Status::Resolved);
    let (_, took) =
        m.wait(&ticket, STEP, |t| t.status == want && t.comments.iter().any(|c| c.text.contains("Lösung"))).await?;
    seen(&format!("MiLa's ticket shows the solution and `{want}`"), took);

    step(6, "MiLa agent", "informs the citizen and closes");
    m.system.update(&ticket, &status_change(&m.status(Status::Closed))).await?;
    let want = b.status(Status::Closed);
    let (_, took) = b.wait(&bt, STEP, |t| t.status == want).await?;
    seen(&format!("BeLa's ticket is `{want}`"), took);
    let (mt, _) = m.wait(&ticket, STEP, |_| true).await?;
    if mt.status != m.status(Status::Closed) {
        bail!("MiLa's ticket is `{}`, not closed", mt.status);
    }
    let id = sdx_model::CaseId::parse(&case_id)?;
    let (mc, bc) = (s.pair.mila.store(), s.pair.bela.store());
    use sdx_store::Store;
    let (mc, bc) = (mc.get_case(id).await?, bc.get_case(id).await?);
    match (mc, bc) {
        (Some(x), Some(y)) if x.case == y.case && x.case.status == Status::Closed => {
            seen(&format!("both nodes hold the same case, status {}", Status::Closed.code()), Duration::ZERO)
        }
        _ => bail!("the nodes' copies of case {case_id} differ or are not closed"),
    }
    println!("\n   the whole path took {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}

/// A status change.
pub fn status_change(status: &str) -> TicketChange {
    TicketChange { status: Some(status.into()), ..TicketChange::default() }
}

/// An agent's comment.
pub async fn comment(system: &AnySystem, ticket: &str, public: bool, text: &str) -> Result<String> {
    Ok(system.comment(ticket, &NewComment { public, text: text.into(), files: Vec::new() }).await?)
}

/// Comments per direction on one ticket in [`propagation`]: tickets stay the size of real ones.
pub const CHANGES_PER_TICKET: usize = 10;

/// Propagation of `n` public comments each way: from the write in one system until the other system shows it
/// (polled every 50 ms), one at a time, on a new linked ticket every [`CHANGES_PER_TICKET`]. Returns (MiLa →
/// BeLa, BeLa → MiLa).
pub async fn propagation(s: &Setup, n: usize) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let mut there = Vec::with_capacity(n);
    let mut back = Vec::with_capacity(n);
    let mut done = 0;
    while done < n {
        let k = CHANGES_PER_TICKET.min(n - done);
        let (a, b) = propagation_on_one_ticket(s, done, k).await?;
        there.extend(a);
        back.extend(b);
        done += k;
    }
    Ok((there, back))
}

async fn propagation_on_one_ticket(s: &Setup, first: usize, n: usize) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let (m, b) = (&s.mila, &s.bela);
    let title = format!("SDX propagation {}", sdx_model::Timestamp::now());
    let ticket = m.system.create(&m.new_ticket(title, "Messung der Laufzeit von Kommentaren.")).await?;
    m.hand_over(&ticket).await?;
    let (mt, _) = m.wait(&ticket, STEP, |t| t.fields.contains_key(m.case_field())).await?;
    let (bt, _) = b.wait_for_case(&mt.fields[m.case_field()], STEP).await?;
    let mut there = Vec::with_capacity(n);
    let mut back = Vec::with_capacity(n);
    for i in first..first + n {
        for (from, from_ticket, to, to_ticket, out) in
            [(m, &ticket, b, &bt, &mut there), (b, &bt, m, &ticket, &mut back)]
        {
            let text = format!("Messung {i} von {}", from.role);
            let t0 = Instant::now();
            comment(&from.system, from_ticket, true, &text).await?;
            let deadline = t0 + STEP;
            loop {
                let t = to.system.get(to_ticket).await?;
                if t.comments.iter().any(|c| c.text.contains(&text)) {
                    out.push(t0.elapsed());
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{text}: not seen in {} within {} s", to.kind, STEP.as_secs());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    Ok((there, back))
}

/// Connector throughput: `n` tickets created in the MiLa's system, then all moved into the handover queue at
/// once; the time from the first move until the BeLa's system has a ticket for every case (read every 200 ms).
/// Returns (time for the moves, time until all arrived).
pub async fn throughput(s: &Setup, n: usize) -> Result<(Duration, Duration)> {
    let (m, b) = (&s.mila, &s.bela);
    let mut tickets = Vec::with_capacity(n);
    for i in 0..n {
        let title = format!("SDX Durchsatz {i} {}", sdx_model::Timestamp::now());
        tickets.push(m.system.create(&m.new_ticket(title, "Messung des Durchsatzes.")).await?);
    }
    let t0 = Instant::now();
    for t in &tickets {
        m.hand_over(t).await?;
    }
    let moved = t0.elapsed();
    let mut pending: Vec<String> = tickets.clone();
    let mut cases: Vec<String> = Vec::new();
    let deadline = t0 + Duration::from_secs(600);
    while !pending.is_empty() || cases.iter().any(|c| !c.is_empty()) {
        if Instant::now() > deadline {
            bail!("{} of {n} tickets not forwarded, {} not arrived within 600 s", pending.len(), cases.len());
        }
        let mut still = Vec::new();
        for t in pending {
            match m.system.get(&t).await?.fields.get(m.case_field()) {
                Some(c) => cases.push(c.clone()),
                None => still.push(t),
            }
        }
        pending = still;
        let mut missing = Vec::new();
        for c in cases {
            if b.system.find_by_field(b.case_field(), &c).await?.is_none() {
                missing.push(c);
            }
        }
        cases = missing;
        if pending.is_empty() && cases.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((moved, t0.elapsed()))
}

/// The `q`-quantile of durations, in seconds.
pub fn quantile(d: &[Duration], q: f64) -> f64 {
    let mut v: Vec<f64> = d.iter().map(Duration::as_secs_f64).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

/// `sdx bench connectors --ticket-systems MILA:BELA --changes N --poll-ms P`
pub fn bench(pair: &str, changes: usize, poll_ms: u64, tickets: usize, push: bool) -> Result<Outcome> {
    let (mila, bela) = parse_pair(pair)?;
    log_to_stderr();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async move {
        let started = ensure_running(&[&mila, &bela]).await?;
        let dir = scratch_dir("sdx-bench-ts")?;
        let result = async {
            let setup = Setup::start(&dir, &mila, &bela, Duration::from_millis(poll_ms), push).await?;
            let pushing: Vec<String> =
                [&setup.mila, &setup.bela].into_iter().filter(|s| push && s.pushes()).map(|s| s.kind.clone()).collect();
            let t0 = Instant::now();
            let r = propagation(&setup, changes).await;
            let took = t0.elapsed();
            let tp = if tickets > 0 && r.is_ok() { Some(throughput(&setup, tickets).await) } else { None };
            setup.stop().await;
            let (there, back) = r?;
            println!(
                "propagation of public comments, {changes} each way ({CHANGES_PER_TICKET} per ticket), polling every \
                 {poll_ms} ms, pushes from: {} (SDX → ticket: change feed)",
                if pushing.is_empty() { "none".to_string() } else { pushing.join(", ") }
            );
            for (name, d) in [(format!("{mila} → {bela}"), &there), (format!("{bela} → {mila}"), &back)] {
                println!(
                    "  {name:<18} p50 {:.2} s  p95 {:.2} s  max {:.2} s",
                    quantile(d, 0.5),
                    quantile(d, 0.95),
                    quantile(d, 1.0)
                );
            }
            println!(
                "  {} changes in {:.1} s: {:.2} changes/s end to end, one at a time",
                2 * changes,
                took.as_secs_f64(),
                (2 * changes) as f64 / took.as_secs_f64()
            );
            if let Some(tp) = tp {
                let (moved, all) = tp?;
                println!(
                    "throughput: {tickets} tickets handed over at once (the moves took {:.1} s) all arrived in {bela} \
                     after {:.1} s: {:.2} tickets/s",
                    moved.as_secs_f64(),
                    all.as_secs_f64(),
                    tickets as f64 / all.as_secs_f64()
                );
            }
            anyhow::Ok(())
        }
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        for kind in started.iter().rev() {
            let k = kind.clone();
            let _ = tokio::task::spawn_blocking(move || run_script(&format!("{k}-stop.sh"))).await;
        }
        result.map(|()| Outcome::Valid)
    })
}
