//! Real ticket systems (OTOBO, Request Tracker, Redmine; started by `scripts/ticketsystems/*-start.sh`)
//! exchanging tickets through two real nodes and two connectors: the demo's whole path for each required pair,
//! and the parts users of sync tools complain about — echoes, duplicates after a crash between a write and its
//! commit, internal notes, statuses a workflow refuses, values without a mapping, both sides editing at once,
//! files above a system's limit, a system that is down for a while.
//!
//! The systems are shared by every test here, so the tests take a lock and run one at a time. Each test works
//! on tickets of its own (unique titles); connectors of earlier tests are stopped.

use std::time::Duration;

use sdx_cli::cmd::demo_systems::{Setup, Side, comment, ensure_running, status_change};
use sdx_connectors::sync::Connector;
use sdx_connectors::system::{
    FileInfo, NewComment, NewFile, NewTicket, SystemError, SystemResult, Ticket, TicketChange, TicketId, TicketSystem,
    Vocabulary,
};
use sdx_connectors::systems::AnySystem;
use sdx_model::{CaseId, Status};
use time::OffsetDateTime;

/// One test at a time over the shared systems, across threads and processes: a `flock` child holds the lock
/// file until its standard input closes (when this guard drops).
struct Serial(std::process::Child);

impl Drop for Serial {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

fn serial() -> Serial {
    use std::io::BufRead;
    let dir = sdx_cli::cmd::demo_systems::ts_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = std::process::Command::new("flock")
        .arg(dir.join("tests.lock"))
        .args(["sh", "-c", "echo locked; cat >/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("flock(1) runs");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    Serial(child)
}

async fn setup(mila: &str, bela: &str, idle: bool) -> (Setup, tempfile::TempDir) {
    ensure_running(&[mila, bela]).await.expect("the ticket systems start");
    let dir = tempfile::tempdir().unwrap();
    let s = if idle {
        Setup::start_idle(dir.path(), mila, bela).await
    } else {
        Setup::start(dir.path(), mila, bela, Duration::from_millis(500), true).await
    };
    (s.expect("nodes and connectors start"), dir)
}

fn unique(what: &str) -> String {
    format!("{what} {}", sdx_model::ItemId::new_time_ordered())
}

/// Create a ticket in the side's incoming queue and hand it over (move it to the handover queue).
async fn handed_over(side: &Side, title: &str) -> TicketId {
    let new = side.new_ticket(title, "Die Antragstellerin kann keine Nachweise hochladen.");
    let id = side.system.create(&new).await.unwrap();
    side.hand_over(&id).await.unwrap();
    id
}

/// Tickets of `side` whose case field holds `case`.
async fn tickets_of_case(side: &Side, case: &str) -> Vec<Ticket> {
    let since = OffsetDateTime::now_utc() - Duration::from_secs(3600);
    let mut out = Vec::new();
    for id in side.system.changed_since(since).await.unwrap() {
        if let Ok(t) = side.system.get(&id).await
            && t.fields.get(side.case_field()).map(String::as_str) == Some(case)
        {
            out.push(t);
        }
    }
    out
}

/// Both sides' connectors (over the real systems), and a ticket handed over and linked on both sides.
struct Linked {
    mc: Connector<AnySystem>,
    bc: Connector<AnySystem>,
    /// The MiLa's ticket.
    ticket: TicketId,
    /// The case id.
    case: String,
    /// The BeLa's ticket.
    bt: TicketId,
}

async fn linked(s: &Setup, title: &str) -> Linked {
    let (m, b) = (&s.mila, &s.bela);
    let mc = s.connector(m, m.system.clone()).unwrap();
    let bc = s.connector(b, b.system.clone()).unwrap();
    let ticket = handed_over(m, &unique(title)).await;
    settle(&mc, &bc).await;
    let case = m.system.get(&ticket).await.unwrap().fields[m.case_field()].clone();
    let bt = tickets_of_case(b, &case).await.remove(0).id;
    Linked { mc, bc, ticket, case, bt }
}

fn count(t: &Ticket, text: &str) -> usize {
    t.comments.iter().filter(|c| c.text.contains(text)).count()
}

/// A system that counts its reads of tickets and, when `crash` is set, fails right after each write succeeded: a
/// connector that crashes between its write into the ticket system and its own commit.
#[derive(Clone)]
struct Probe {
    system: AnySystem,
    crash: bool,
    reads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Probe {
    fn crash_after_write(system: &AnySystem) -> Probe {
        Probe { system: system.clone(), crash: true, reads: Default::default() }
    }
    fn counting(system: &AnySystem) -> Probe {
        Probe { system: system.clone(), crash: false, reads: Default::default() }
    }
    fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn after_write<T>(&self, written: T) -> SystemResult<T> {
        if self.crash { crash() } else { Ok(written) }
    }
}

fn crash<T>() -> SystemResult<T> {
    Err(SystemError::Unavailable { system: "test", detail: "crashed after the write".into() })
}

impl TicketSystem for Probe {
    fn kind(&self) -> &'static str {
        self.system.kind()
    }
    async fn changed_since(&self, since: OffsetDateTime) -> SystemResult<Vec<TicketId>> {
        self.system.changed_since(since).await
    }
    async fn get(&self, id: &str) -> SystemResult<Ticket> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.system.get(id).await
    }
    async fn find_by_field(&self, field: &str, value: &str) -> SystemResult<Option<TicketId>> {
        self.system.find_by_field(field, value).await
    }
    async fn create(&self, ticket: &NewTicket) -> SystemResult<TicketId> {
        let id = self.system.create(ticket).await?;
        self.after_write(id)
    }
    async fn update(&self, id: &str, change: &TicketChange) -> SystemResult<()> {
        self.system.update(id, change).await?;
        self.after_write(())
    }
    async fn comment(&self, id: &str, comment: &NewComment) -> SystemResult<String> {
        let id = self.system.comment(id, comment).await?;
        self.after_write(id)
    }
    async fn download(&self, id: &str, file: &FileInfo) -> SystemResult<Vec<u8>> {
        self.system.download(id, file).await
    }
    async fn vocabulary(&self) -> SystemResult<Vocabulary> {
        self.system.vocabulary().await
    }
}

/// Run both connectors' rounds until neither node's feed had anything new twice in a row (every change a
/// connector sends, and every message a node receives, is an event in a feed).
async fn settle<A: TicketSystem, B: TicketSystem>(m: &Connector<A>, b: &Connector<B>) {
    let mut quiet = 0;
    for _ in 0..40 {
        m.poll_system().await.ok();
        b.poll_system().await.ok();
        let mut busy = 0;
        busy += m.follow_feed(Duration::from_millis(500)).await.unwrap_or(1);
        busy += b.follow_feed(Duration::from_millis(500)).await.unwrap_or(1);
        quiet = if busy == 0 { quiet + 1 } else { 0 };
        if quiet >= 2 {
            return;
        }
        // Ticket systems have one-second timestamps: the next poll sees what changed in this second.
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_for_each_required_pair() {
    let _lock = serial();
    for pair in ["otobo:redmine", "rt:otobo", "redmine:rt"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sdx"))
            .args(["demo", "--ticket-systems", pair])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("every step was seen"),
            "sdx demo --ticket-systems {pair}: {}\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_write_and_commit_duplicates_nothing_and_nothing_echoes() {
    let _lock = serial();
    let (s, _dir) = setup("otobo", "rt", true).await;
    let (m, b) = (&s.mila, &s.bela);
    let mc = s.connector(m, m.system.clone()).unwrap();
    let bc = s.connector(b, b.system.clone()).unwrap();
    let bcrash = s.connector(b, Probe::crash_after_write(&b.system)).unwrap();
    let mcrash = s.connector(m, Probe::crash_after_write(&m.system)).unwrap();

    // Forward; the BeLa's connector crashes right after creating the ticket, then runs again.
    let ticket = handed_over(m, &unique("Absturz nach dem Schreiben")).await;
    mc.poll_system().await.unwrap();
    let case = m.system.get(&ticket).await.unwrap().fields[m.case_field()].clone();
    assert!(bcrash.follow_feed(Duration::from_secs(5)).await.is_err(), "the simulated crash is reported");
    bc.follow_feed(Duration::from_secs(5)).await.unwrap();
    let bt = tickets_of_case(b, &case).await;
    assert_eq!(bt.len(), 1, "one ticket at the BeLa for the case, not two");
    let bt = bt[0].id.clone();

    // A public reply at the BeLa; the MiLa's connector crashes right after writing it, then runs again.
    comment(&b.system, &bt, true, "Antwort nach Absturz").await.unwrap();
    bc.poll_system().await.unwrap();
    assert!(mcrash.follow_feed(Duration::from_secs(5)).await.is_err());
    mc.follow_feed(Duration::from_secs(5)).await.unwrap();
    assert_eq!(count(&m.system.get(&ticket).await.unwrap(), "Antwort nach Absturz"), 1, "written once");

    // Once more, now that the link says which items are being written: the record of the write, stored before
    // it, is what makes the run after the crash look into the ticket.
    comment(&b.system, &bt, true, "Zweite Rückmeldung mit Absturz").await.unwrap();
    bc.poll_system().await.unwrap();
    assert!(mcrash.follow_feed(Duration::from_secs(5)).await.is_err());
    mc.follow_feed(Duration::from_secs(5)).await.unwrap();
    assert_eq!(count(&m.system.get(&ticket).await.unwrap(), "Zweite Rückmeldung mit Absturz"), 1, "written once");

    // Without a crash in doubt, an item that cannot be in the ticket yet is written without reading it first.
    let probe = Probe::counting(&m.system);
    let mcount = s.connector(m, probe.clone()).unwrap();
    comment(&b.system, &bt, true, "Antwort ohne Absturz").await.unwrap();
    bc.poll_system().await.unwrap();
    assert_eq!(mcount.follow_feed(Duration::from_secs(5)).await.unwrap(), 1, "the case is synced");
    assert_eq!(count(&m.system.get(&ticket).await.unwrap(), "Antwort ohne Absturz"), 1, "written once");
    assert_eq!(probe.reads(), 0, "the ticket was not read to write a new item into it");

    // The node committed a change but the connector's own commit was lost: the retry is answered, not applied.
    let node = s.node(m).unwrap();
    let key = format!("ticket:{ticket}");
    let before = node.state::<serde_json::Value>(&key).await.unwrap().unwrap();
    let cursor = node.state::<i64>("cursor.system").await.unwrap().unwrap();
    comment(&m.system, &ticket, true, "Nachtrag, einmal").await.unwrap();
    mc.poll_system().await.unwrap();
    let now = node.state::<serde_json::Value>(&key).await.unwrap().unwrap();
    assert_ne!(now.value, before.value, "the link moved on");
    node.put_state(&key, &before.value, Some(now.version)).await.unwrap().unwrap();
    node.put_state("cursor.system", &cursor.value, None).await.unwrap();
    mc.poll_system().await.unwrap();
    let id = CaseId::parse(&case).unwrap();
    let journal = node.case(id).await.unwrap().unwrap().case.journal;
    assert_eq!(journal.iter().filter(|e| e.text.contains("Nachtrag, einmal")).count(), 1, "applied once");

    // Everything settles; then nothing moves any more (no echo), and each text is in each ticket once.
    settle(&mc, &bc).await;
    let (mt, btk) = (m.system.get(&ticket).await.unwrap(), b.system.get(&bt).await.unwrap());
    let deliveries = |e: &sdx_node::engine::Engine<sdx_store::AnyStore>| {
        let e = e.clone();
        async move { sdx_store::Store::list_deliveries(e.store(), None, 500).await.unwrap().len() }
    };
    let (dm, db) = (deliveries(&s.pair.mila).await, deliveries(&s.pair.bela).await);
    for _ in 0..3 {
        mc.poll_system().await.unwrap();
        bc.poll_system().await.unwrap();
        mc.follow_feed(Duration::from_millis(300)).await.unwrap();
        bc.follow_feed(Duration::from_millis(300)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(m.system.get(&ticket).await.unwrap().comments.len(), mt.comments.len(), "no echo at the MiLa");
    assert_eq!(b.system.get(&bt).await.unwrap().comments.len(), btk.comments.len(), "no echo at the BeLa");
    assert_eq!((deliveries(&s.pair.mila).await, deliveries(&s.pair.bela).await), (dm, db), "no message echoes");
    assert_eq!(count(&btk, "Nachtrag, einmal"), 1);
    assert_eq!(count(&mt, "Antwort nach Absturz"), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_notes_stay_refused_and_unmapped_values_are_reported() {
    let _lock = serial();
    let (s, _dir) = setup("redmine", "otobo", true).await;
    let (m, b) = (&s.mila, &s.bela);
    let Linked { mc, bc, ticket, case, bt } = linked(&s, "Interne Notizen").await;

    // An internal note and a public reply at the BeLa: only the reply arrives.
    comment(&b.system, &bt, false, "Nur für uns").await.unwrap();
    comment(&b.system, &bt, true, "Für alle sichtbar").await.unwrap();
    settle(&mc, &bc).await;
    let mt = m.system.get(&ticket).await.unwrap();
    assert_eq!(count(&mt, "Für alle sichtbar"), 1);
    assert_eq!(count(&mt, "Nur für uns"), 0, "internal notes never leave the organisation");
    let entry = mt.comments.iter().find(|c| c.text.contains("Für alle sichtbar")).unwrap();
    assert!(entry.public, "a public reply stays public");

    // A status without a mapping at the BeLa (OTOBO's "merged"): not sent, an internal note says why, health too.
    let vocabulary = b.system.vocabulary().await.unwrap();
    let unmapped = vocabulary
        .statuses
        .iter()
        .find(|st| b.file.mapping.status_in(st).is_err())
        .expect("the system has a status the mapping leaves out")
        .clone();
    b.system.update(&bt, &status_change(&unmapped)).await.unwrap();
    settle(&mc, &bc).await;
    let btk = b.system.get(&bt).await.unwrap();
    let note = btk.comments.iter().find(|c| c.text.contains("SDX-Connector") && c.text.contains(&unmapped));
    assert!(note.is_some_and(|n| !n.public), "an internal note names the unmapped status: {:?}", btk.comments);
    let health = s.node(b).unwrap().state::<serde_json::Value>("health").await.unwrap().unwrap();
    assert!(health.value.to_string().contains(&unmapped), "{}", health.value);
    let node_case = s.node(m).unwrap().case(CaseId::parse(&case).unwrap()).await.unwrap().unwrap();
    assert_eq!(node_case.case.status, Status::New, "nothing was sent for the unmapped status");
    let timeline = sdx_store::Store::timeline(s.pair.bela.store(), CaseId::parse(&case).unwrap()).await.unwrap();
    let reported: Vec<_> = timeline.iter().filter(|e| e.kind == sdx_store::EventKind::Reported).collect();
    assert_eq!(reported.len(), 1, "once in the case's timeline: {timeline:?}");
    assert!(reported[0].detail.contains(&unmapped), "{:?}", reported[0]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_editing_at_once_end_identical_and_the_loser_sees_it() {
    let _lock = serial();
    let (s, _dir) = setup("otobo", "redmine", true).await;
    let (m, b) = (&s.mila, &s.bela);
    let Linked { mc, bc, ticket, case, bt } = linked(&s, "Gleichzeitig").await;
    b.system.update(&bt, &status_change(&b.status(Status::InProgress))).await.unwrap();
    settle(&mc, &bc).await;

    // At the same time: the BeLa resolves, the MiLa withdraws the case. Both connectors send before either
    // sees the other's change.
    comment(&b.system, &bt, true, "Gelöst durch Neustart.").await.unwrap();
    b.system.update(&bt, &status_change(&b.status(Status::Resolved))).await.unwrap();
    m.system.update(&ticket, &status_change(&m.status(Status::Cancelled))).await.unwrap();
    bc.poll_system().await.unwrap();
    mc.poll_system().await.unwrap();
    settle(&mc, &bc).await;

    let id = CaseId::parse(&case).unwrap();
    let (mv, bv) = (
        s.node(m).unwrap().case(id).await.unwrap().unwrap().case,
        s.node(b).unwrap().case(id).await.unwrap().unwrap().case,
    );
    assert_eq!(mv, bv, "both nodes hold the same case");
    let (mt, btk) = (m.system.get(&ticket).await.unwrap(), b.system.get(&bt).await.unwrap());
    assert_eq!(mt.status, m.status(mv.status), "the MiLa's ticket shows the case's status");
    assert_eq!(btk.status, b.status(bv.status), "the BeLa's ticket shows the case's status");
    // The side the case was forwarded to orders the changes: the MiLa's withdrawal lost. Its agent sees an
    // internal note — a conflict note when the changes crossed between the nodes, or the node's refusal when
    // the BeLa's resolution arrived at the MiLa's node first.
    assert_eq!(mv.status, Status::Resolved, "the BeLa's resolution won");
    let noted = |t: &Ticket| {
        t.comments.iter().any(|c| {
            !c.public && (c.text.contains("Gleichzeitige Änderungen") || c.text.contains("was not sent to SDX"))
        })
    };
    assert!(noted(&mt), "the MiLa's agent sees that the withdrawal lost: {:?}", mt.comments);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_travel_and_one_above_the_target_limit_is_reported() {
    let _lock = serial();
    let (s, _dir) = setup("otobo", "redmine", true).await;
    let (m, b) = (&s.mila, &s.bela);
    let Linked { mc, bc, ticket, bt, .. } = linked(&s, "Dateien").await;

    let small: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let limit = b.system.vocabulary().await.unwrap().max_file_bytes.expect("Redmine has a file limit");
    let big = vec![0x42u8; limit as usize + 1024];
    for (name, bytes) in [("nachweis.pdf", &small), ("gross.bin", &big)] {
        let file = NewFile { name: name.into(), media_type: "application/octet-stream".into(), content: bytes.clone() };
        m.system
            .comment(&ticket, &NewComment { public: true, text: format!("Anhang {name}"), files: vec![file] })
            .await
            .unwrap();
    }
    settle(&mc, &bc).await;
    let btk = b.system.get(&bt).await.unwrap();
    let files: Vec<&FileInfo> = btk.comments.iter().flat_map(|c| c.files.iter()).collect();
    let arrived = files.iter().find(|f| f.name == "nachweis.pdf").expect("the small file arrived");
    assert_eq!(b.system.download(&bt, arrived).await.unwrap(), small, "with the same bytes");
    assert!(!files.iter().any(|f| f.name == "gross.bin"));
    assert!(
        btk.comments.iter().any(|c| !c.public && c.text.contains("gross.bin") && c.text.contains("größer")),
        "the file above Redmine's limit is reported on the ticket"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_down_for_a_while_gets_every_change_when_it_returns() {
    let _lock = serial();
    let down = Duration::from_secs(std::env::var("SDX_TS_DOWN_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(120));
    let (s, _dir) = setup("otobo", "rt", false).await;
    let (m, b) = (&s.mila, &s.bela);
    let ticket = handed_over(m, &unique("System zeitweise aus")).await;
    let (mt, _) = m.wait(&ticket, Duration::from_secs(60), |t| t.fields.contains_key(m.case_field())).await.unwrap();
    let case = mt.fields[m.case_field()].clone();
    let (bt, _) = b.wait_for_case(&case, Duration::from_secs(60)).await.unwrap();

    sdx_cli::cmd::demo_systems::run_script("rt-stop.sh").unwrap();
    let t0 = std::time::Instant::now();
    for i in 0..3 {
        comment(&m.system, &ticket, true, &format!("Während RT aus war, Nr. {i}")).await.unwrap();
    }
    let second = handed_over(m, &unique("Neu während RT aus war")).await;
    tokio::time::sleep(down.saturating_sub(t0.elapsed())).await;
    sdx_cli::cmd::demo_systems::run_script("rt-start.sh").unwrap();

    let (btk, _) = b
        .wait(&bt, Duration::from_secs(120), |t| (0..3).all(|i| count(t, &format!("Während RT aus war, Nr. {i}")) == 1))
        .await
        .expect("every comment arrives once when RT is back");
    assert_eq!(btk.comments.iter().filter(|c| c.text.contains("Während RT aus war")).count(), 3);
    let (st, _) = m.wait(&second, Duration::from_secs(60), |t| t.fields.contains_key(m.case_field())).await.unwrap();
    b.wait_for_case(&st.fields[m.case_field()], Duration::from_secs(120)).await.expect("the new ticket arrives");
    s.stop().await;
}

/// `sdx serve` (one line per listener on stdout), its local API port, and the child.
fn serve(config: &std::path::Path) -> (std::process::Child, u16) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sdx"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("SDX_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    for _ in 0..2 {
        line.clear();
        out.read_line(&mut line).unwrap();
    }
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let port = line.trim().rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{line}"));
    (child, port)
}

fn connector_alone(config: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_sdx"))
        .args(["connector", "run", "--config", config.to_str().unwrap()])
        .env("SDX_LOG", "warn")
        .spawn()
        .unwrap()
}

fn stop(mut child: std::process::Child) {
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

/// A child process stopped (SIGTERM, then waited for) when this drops — also when a test fails half-way.
struct Stopped(Option<std::process::Child>);

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            stop(child);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_its_connectors_and_one_alone_survives_kill_9_without_duplicates() {
    let _lock = serial();
    let (s, dir) = setup("otobo", "redmine", true).await;
    let token = s.pair.api_token.clone();
    let (m, b) = (&s.mila, &s.bela);
    let (mname, bname) = (m.file.name.clone(), b.file.name.clone());
    // The same nodes as processes: the MiLa's `sdx serve` runs its connector from [[connectors]]; the BeLa's
    // connector runs alone (`sdx connector run`) against the BeLa's `sdx serve`.
    let Setup { pair, mila, bela, .. } = s;
    pair.stop().await;
    let d = dir.path();
    let mut toml = std::fs::read_to_string(d.join("mila/node.toml")).unwrap();
    toml.push_str(&format!("\n[[connectors]]\nfile = \"../{mname}.toml\"\n"));
    std::fs::write(d.join("mila/node.toml"), toml).unwrap();
    let (mila_node, _) = serve(&d.join("mila/node.toml"));
    let (bela_node, bela_api) = serve(&d.join("bela/node.toml"));
    let bfile = d.join(format!("{bname}.toml"));
    let mut text = std::fs::read_to_string(&bfile).unwrap();
    text.push_str(&format!("\n[node]\nurl = \"http://127.0.0.1:{bela_api}/api/v1\"\ntoken = \"{token}\"\n"));
    std::fs::write(&bfile, text).unwrap();
    let mut alone = connector_alone(&bfile);

    let ticket = handed_over(&mila, &unique("Serve und kill -9")).await;
    let (mt, _) =
        mila.wait(&ticket, Duration::from_secs(60), |t| t.fields.contains_key(mila.case_field())).await.unwrap();
    let (bt, _) = bela.wait_for_case(&mt.fields[mila.case_field()], Duration::from_secs(60)).await.unwrap();

    // Comments both ways while the BeLa's connector is killed with SIGKILL and restarted again and again.
    let n = 8;
    for i in 0..n {
        comment(&mila.system, &ticket, true, &format!("Von MiLa {i}")).await.unwrap();
        comment(&bela.system, &bt, true, &format!("Von BeLa {i}")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300 + 170 * (i % 4) as u64)).await;
        let _ = alone.kill();
        let _ = alone.wait();
        alone = connector_alone(&bfile);
    }
    let all = |prefix: &'static str| move |t: &Ticket| (0..n).all(|i| count(t, &format!("{prefix} {i}")) >= 1);
    let (btk, _) = bela.wait(&bt, Duration::from_secs(120), all("Von MiLa")).await.expect("every MiLa comment arrives");
    let (mtk, _) =
        mila.wait(&ticket, Duration::from_secs(120), all("Von BeLa")).await.expect("every BeLa comment arrives");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (btk2, mtk2) = (bela.system.get(&bt).await.unwrap(), mila.system.get(&ticket).await.unwrap());
    for i in 0..n {
        assert_eq!(count(&btk2, &format!("Von MiLa {i}")), 1, "MiLa comment {i} once at the BeLa");
        assert_eq!(count(&mtk2, &format!("Von BeLa {i}")), 1, "BeLa comment {i} once at the MiLa");
    }
    assert_eq!(btk2.comments.len(), btk.comments.len(), "nothing more came (no echo)");
    assert_eq!(mtk2.comments.len(), mtk.comments.len(), "nothing more came (no echo)");
    let _ = alone.kill();
    let _ = alone.wait();
    stop(mila_node);
    stop(bela_node);
}

/// Several ticket systems inside one organisation (issue 9, use case 2.3): the BeLa's `sdx serve` runs two
/// connectors, Redmine for Wohngeld cases and RT for the rest (`[[connectors]]` with `cases = "own"`). Two OTOBO
/// tickets handed over by the MiLa land each in its system and only there, and the system that owns a case
/// works on it: RT's status change reaches OTOBO.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ticket_systems_of_one_organisation_each_get_the_cases_of_their_services() {
    const WOHNGELD: &str = "99107004017000";
    let _lock = serial();
    ensure_running(&["rt"]).await.expect("RT starts");
    let (s, dir) = setup("otobo", "redmine", true).await;
    let Setup { pair, mila, bela, .. } = s;
    pair.stop().await;
    let d = dir.path();
    let mila_org = mila.file.organisation.clone();
    let rt = Side::new("BeLa", "rt", &bela.file.organisation, (&mila_org, "115-Servicecenter"), d).unwrap();
    let append = |node: &str, text: String| {
        let path = d.join(format!("{node}/node.toml"));
        let toml = std::fs::read_to_string(&path).unwrap() + &text;
        std::fs::write(&path, toml).unwrap();
    };
    append("mila", format!("\n[[connectors]]\nfile = \"../{}.toml\"\n", mila.file.name));
    append(
        "bela",
        format!(
            "\n[[connectors]]\nfile = \"../{}.toml\"\ncases = \"own\"\nservices = [\"{WOHNGELD}\"]\n\
             \n[[connectors]]\nfile = \"../{}.toml\"\ncases = \"own\"\ndefault_owner = true\n",
            bela.file.name, rt.file.name
        ),
    );
    let _mila_node = Stopped(Some(serve(&d.join("mila/node.toml")).0));
    let _bela_node = Stopped(Some(serve(&d.join("bela/node.toml")).0));

    // A Wohngeld ticket (OTOBO's type "Service Request" maps to the service) and one without a service.
    let mut wohngeld = mila.new_ticket(unique("Wohngeld"), "Der Antrag lässt sich nicht absenden.");
    wohngeld.kind = Some("Service Request".into());
    let w = mila.system.create(&wohngeld).await.unwrap();
    mila.hand_over(&w).await.unwrap();
    let other = handed_over(&mila, &unique("Sonstiges")).await;
    let field = mila.case_field().to_string();
    let case_of = |t: TicketId| {
        let (mila, field) = (&mila, field.clone());
        async move {
            let (t, _) = mila.wait(&t, Duration::from_secs(60), |t| t.fields.contains_key(&field)).await.unwrap();
            t.fields[&field].clone()
        }
    };
    let (cw, co) = (case_of(w.clone()).await, case_of(other.clone()).await);

    // Each case in its system, and only there.
    bela.wait_for_case(&cw, Duration::from_secs(60)).await.expect("the Wohngeld case in Redmine");
    let (rt_ticket, _) = rt.wait_for_case(&co, Duration::from_secs(60)).await.expect("the other case in RT");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rt.system.find_by_field(rt.case_field(), &cw).await.unwrap(), None, "not in RT too");
    assert_eq!(bela.system.find_by_field(bela.case_field(), &co).await.unwrap(), None, "not in Redmine too");

    // RT owns its case: its agent's status change reaches OTOBO.
    let in_progress = rt.status(Status::InProgress);
    rt.system.update(&rt_ticket, &status_change(&in_progress)).await.unwrap();
    let target = mila.status(Status::InProgress);
    mila.wait(&other, Duration::from_secs(60), |t| t.status == target).await.expect("RT's status reaches OTOBO");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_check_names_what_the_live_system_lacks() {
    let _lock = serial();
    ensure_running(&["rt"]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_, text) = sdx_cli::cmd::demo_systems::connector_file(
        "rt",
        "rt-check",
        sdx_model::sample::MILA,
        (sdx_model::sample::BELA, "BeLa"),
    )
    .unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sdx"))
        .args(["connector", "check", "--config", good.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ok: the mapping fits the system") && stdout.contains("SDX Case"), "{stdout}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, text.replace("\"stalled\"", "\"wartend\"").replace("queue = \"SDX\"", "queue = \"Weiter\""))
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sdx"))
        .args(["connector", "check", "--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("status `wartend` does not exist"), "{stderr}");
    assert!(stderr.contains("handover queue `Weiter` does not exist"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_reached_only_over_another_is_reached_and_one_refused_is_reported() {
    let _lock = serial();
    // RT reaches "closed" only from "resolved". The BeLa's node resolves (as another of its systems might) and
    // the MiLa closes before the BeLa's connector runs: its RT ticket is still "open" and must go to "closed".
    let (s, _dir) = setup("otobo", "rt", true).await;
    let (m, b) = (&s.mila, &s.bela);
    let Linked { mc, bc, ticket, case, bt } = linked(&s, "Über einen Zwischenstatus").await;
    b.system.update(&bt, &status_change(&b.status(Status::InProgress))).await.unwrap();
    settle(&mc, &bc).await;
    let id = CaseId::parse(&case).unwrap();
    let resolve = sdx_model::Body::Resolve(sdx_model::Resolve {
        revision: 0,
        solution: sdx_model::Solution {
            code: sdx_model::ResolutionCode::Fixed,
            text: "Behoben.".into(),
            resolved_at: sdx_model::Timestamp::now(),
            resolved_by: sdx_model::OrgKey::parse(sdx_model::sample::BELA).unwrap(),
        },
        journal: Vec::new(),
    });
    s.node(b).unwrap().change(id, &resolve, "test:resolve").await.unwrap();
    for _ in 0..3 {
        mc.follow_feed(Duration::from_secs(2)).await.unwrap();
    }
    assert_eq!(m.system.get(&ticket).await.unwrap().status, m.status(Status::Resolved));
    m.system.update(&ticket, &status_change(&m.status(Status::Closed))).await.unwrap();
    mc.poll_system().await.unwrap();
    assert_eq!(b.system.get(&bt).await.unwrap().status, b.status(Status::InProgress), "RT still open");
    settle(&mc, &bc).await;
    let btk = b.system.get(&bt).await.unwrap();
    assert_eq!(btk.status, "closed", "reached over resolved");
    assert!(!btk.comments.iter().any(|c| c.text.contains("SDX-Connector")), "{:?}", btk.comments);
    s.stop().await;

    // Redmine's developer workflow never lets the API user set "Rejected": a withdrawal by the MiLa cannot be
    // shown as the mapping says, and the BeLa's agent is told so on the ticket.
    let (s, _dir) = setup("rt", "redmine", true).await;
    let (m, b) = (&s.mila, &s.bela);
    let Linked { mc, bc, ticket, case, bt } = linked(&s, "Zurückgezogen").await;
    m.system.update(&ticket, &status_change(&m.status(Status::Cancelled))).await.unwrap();
    settle(&mc, &bc).await;
    let id = CaseId::parse(&case).unwrap();
    let at_bela = s.node(b).unwrap().case(id).await.unwrap();
    assert_eq!(at_bela.map(|v| v.case.status), Some(Status::Cancelled), "case {id} at the BeLa's node");
    let btk = b.system.get(&bt).await.unwrap();
    assert_ne!(btk.status, "Rejected");
    assert!(
        btk.comments.iter().any(|c| !c.public && c.text.contains("SDX-Connector") && c.text.contains("cancelled")),
        "the refused status is reported on the ticket: {:?}",
        btk.comments
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_longer_than_the_target_takes_arrives_whole_and_is_reported() {
    let _lock = serial();
    let (s, _dir) = setup("redmine", "rt", true).await;
    let (m, b) = (&s.mila, &s.bela);
    let mc = s.connector(m, m.system.clone()).unwrap();
    let bc = s.connector(b, b.system.clone()).unwrap();
    // 143 characters, 246 bytes of UTF-8: Redmine takes it, RT's subject (200 bytes) does not.
    let title = format!("Übergröße {} {}", "äöüß".repeat(25), sdx_model::ItemId::new_random().uuid().simple());
    let ticket = handed_over(m, &title).await;
    settle(&mc, &bc).await;
    let case = m.system.get(&ticket).await.unwrap().fields[m.case_field()].clone();
    let bt = tickets_of_case(b, &case).await;
    assert_eq!(bt.len(), 1, "the case arrived as one ticket");
    let t = &bt[0];
    assert!(t.title.chars().count() < title.chars().count() && t.title.ends_with('…'), "{}", t.title);
    assert!(t.description.contains(&format!("Betreff: {title}")), "the whole subject is kept: {}", t.description);
    assert!(t.comments.iter().any(|c| !c.public && c.text.contains("shortened")), "{:?}", t.comments);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_choose_the_queue_priorities_follow_the_assignee_and_the_requester_can_stay_home() {
    let _lock = serial();
    let (mut s, _dir) = setup("otobo", "redmine", true).await;
    const WOHNGELD: &str = "99107004017000";
    let service = |queue: Option<&str>, kind: Option<&str>| sdx_connectors::mapping::ServiceMap {
        leika_key: Some(WOHNGELD.into()),
        ozg_id: None,
        name: Some("Wohngeld".into()),
        queue: queue.map(str::to_string),
        kind: kind.map(str::to_string),
        field: None,
        value: None,
    };
    // The MiLa (OTOBO): tickets of type "Incident" are about Wohngeld; the citizen's contact stays home.
    s.mila.file.mapping.service = vec![service(None, Some("Incident"))];
    s.mila.file.mapping.travel.requester = false;
    // The BeLa (Redmine): Wohngeld tickets go into the project sdx-other.
    s.bela.file.mapping.service = vec![service(Some("sdx-other"), None)];
    let (m, b) = (&s.mila, &s.bela);
    let mc = s.connector(m, m.system.clone()).unwrap();
    let bc = s.connector(b, b.system.clone()).unwrap();

    let mut new = m.new_ticket(unique("Wohngeld"), "Der Antrag lässt sich nicht absenden.");
    new.kind = Some("Incident".into());
    new.requester = Some(sdx_connectors::system::Contact {
        name: Some("Erika Mustermann".into()),
        email: Some("erika@example.org".into()),
    });
    let ticket = m.system.create(&new).await.unwrap();
    m.hand_over(&ticket).await.unwrap();
    settle(&mc, &bc).await;
    let case = m.system.get(&ticket).await.unwrap().fields[m.case_field()].clone();
    let case_id = CaseId::parse(&case).unwrap();
    let at_bela = s.node(b).unwrap().case(case_id).await.unwrap().unwrap().case;
    let leika = at_bela.category.service.as_ref().and_then(|sv| sv.leika_key.as_ref()).map(|k| k.as_str().to_string());
    assert_eq!(leika.as_deref(), Some(WOHNGELD), "the ticket's type gave the case its service");
    assert!(at_bela.requester.is_none(), "travel.requester = false keeps the citizen's contact at the MiLa");
    let bt = tickets_of_case(b, &case).await.remove(0);
    assert_eq!(bt.queue.as_deref(), Some("sdx-other"), "the service chose the BeLa's project");

    // The BeLa (assignee) raises the priority: the case and the MiLa's ticket follow.
    let high = b.file.mapping.priority_out(sdx_model::Priority::High).unwrap().to_string();
    b.system.update(&bt.id, &TicketChange { priority: Some(high), ..TicketChange::default() }).await.unwrap();
    settle(&mc, &bc).await;
    let at_mila = s.node(m).unwrap().case(case_id).await.unwrap().unwrap().case;
    assert_eq!(at_mila.priority, sdx_model::Priority::High);
    let mt = m.system.get(&ticket).await.unwrap();
    assert_eq!(mt.priority.as_deref(), m.file.mapping.priority_out(sdx_model::Priority::High));

    // The MiLa's agent lowers it: in SDX the assignee classifies, so the ticket is set back and the agent told.
    let lowest = m.file.mapping.priority_out(sdx_model::Priority::Planning).unwrap().to_string();
    m.system
        .update(&ticket, &TicketChange { priority: Some(lowest.clone()), ..TicketChange::default() })
        .await
        .unwrap();
    settle(&mc, &bc).await;
    let at_mila = s.node(m).unwrap().case(case_id).await.unwrap().unwrap().case;
    assert_eq!(at_mila.priority, sdx_model::Priority::High, "the originator does not classify");
    let mt = m.system.get(&ticket).await.unwrap();
    let note = mt.comments.iter().find(|c| c.text.contains("SDX-Connector") && c.text.contains(&lowest));
    assert!(note.is_some_and(|n| !n.public), "an internal note tells the agent: {:?}", mt.comments);
    assert_eq!(mt.priority.as_deref(), m.file.mapping.priority_out(sdx_model::Priority::High), "set back");
    let bt = b.system.get(&bt.id).await.unwrap();
    assert_eq!(bt.priority.as_deref(), b.file.mapping.priority_out(sdx_model::Priority::High), "nothing went over");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_carries_a_change_without_waiting_for_the_poll() {
    let _lock = serial();
    ensure_running(&["otobo", "rt"]).await.expect("the ticket systems start");
    let dir = tempfile::tempdir().unwrap();
    // Polling once a minute: only the pushes of OTOBO (invoker) and RT (scrip) can carry the changes in time.
    let s = Setup::start(dir.path(), "otobo", "rt", Duration::from_secs(60), true).await.unwrap();
    let (m, b) = (&s.mila, &s.bela);
    assert!(m.pushes() && b.pushes(), "the start scripts set up the pushes");
    // The connectors' first rounds (at their start) are over before anything happens.
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Each step must be seen well inside one polling interval.
    let step = Duration::from_secs(20);
    let ticket = m.system.create(&m.new_ticket(unique("Push"), "Eine Änderung ohne Warten.")).await.unwrap();
    m.hand_over(&ticket).await.unwrap();
    let (mt, _) =
        m.wait(&ticket, step, |t| t.fields.contains_key(m.case_field())).await.expect("OTOBO pushed the move");
    let (bt, _) = b.wait_for_case(&mt.fields[m.case_field()], step).await.unwrap();
    comment(&b.system, &bt, true, "Antwort per Push").await.unwrap();
    m.wait(&ticket, step, |t| count(t, "Antwort per Push") == 1).await.expect("RT pushed the comment");
    comment(&m.system, &ticket, true, "Rückfrage per Push").await.unwrap();
    b.wait(&bt, step, |t| count(t, "Rückfrage per Push") == 1).await.expect("OTOBO pushed the comment");
    s.stop().await;
}

/// A system that stretches the moments around a connector's writes so that a race surely happens: with
/// `slow_write`, each write returns only 2 s after it happened (the link that records it comes that much later);
/// a read of the ticket named in `hold` returns what it read only after the next write (or after 3 s).
#[derive(Clone)]
struct Stretched {
    inner: AnySystem,
    slow_write: bool,
    hold: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    reading: std::sync::Arc<tokio::sync::Notify>,
    written: std::sync::Arc<tokio::sync::Notify>,
}

impl Stretched {
    fn new(inner: &AnySystem, slow_write: bool) -> Stretched {
        Stretched {
            inner: inner.clone(),
            slow_write,
            hold: Default::default(),
            reading: Default::default(),
            written: Default::default(),
        }
    }
}

impl TicketSystem for Stretched {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn changed_since(&self, since: OffsetDateTime) -> SystemResult<Vec<TicketId>> {
        self.inner.changed_since(since).await
    }
    async fn get(&self, id: &str) -> SystemResult<Ticket> {
        let t = self.inner.get(id).await;
        if self.hold.lock().unwrap().take_if(|h| h == id).is_some() {
            self.reading.notify_one();
            let _ = tokio::time::timeout(Duration::from_secs(3), self.written.notified()).await;
        }
        t
    }
    async fn find_by_field(&self, field: &str, value: &str) -> SystemResult<Option<TicketId>> {
        self.inner.find_by_field(field, value).await
    }
    async fn create(&self, ticket: &NewTicket) -> SystemResult<TicketId> {
        self.inner.create(ticket).await
    }
    async fn update(&self, id: &str, change: &TicketChange) -> SystemResult<()> {
        self.inner.update(id, change).await?;
        self.written.notify_one();
        if self.slow_write {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        Ok(())
    }
    async fn comment(&self, id: &str, comment: &NewComment) -> SystemResult<String> {
        self.inner.comment(id, comment).await
    }
    async fn download(&self, id: &str, file: &FileInfo) -> SystemResult<Vec<u8>> {
        self.inner.download(id, file).await
    }
    async fn vocabulary(&self) -> SystemResult<Vocabulary> {
        self.inner.vocabulary().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_written_from_sdx_is_not_read_back_as_the_agents_before_its_link_is_stored() {
    status_written_while_the_system_is_read("Kein Echo", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_read_before_a_status_written_from_sdx_does_not_send_the_old_status() {
    status_written_while_the_system_is_read("Kein alter Stand", true).await;
}

/// The BeLa's status reaches the MiLa's connector while it polls its system: the write comes between the read
/// of the ticket and its link (`read_first`) or between the write and the link that records it. Either way the
/// status the connector wrote (or the one before it) must not go out as the agent's change.
async fn status_written_while_the_system_is_read(title: &str, read_first: bool) {
    let _lock = serial();
    let (s, _dir) = setup("otobo", "rt", true).await;
    let (m, b) = (&s.mila, &s.bela);
    let Linked { mc, bc, ticket, case, .. } = linked(&s, title).await;
    let case_id = CaseId::parse(&case).unwrap();

    // The BeLa acknowledges. OTOBO shows it as "open", which an agent's hand would mean "in progress": read back
    // as the agent's change, it would go out and undo the BeLa's status (or be refused and reported).
    let ack = sdx_model::Body::Update(sdx_model::Update {
        status: Some(Status::Acknowledged),
        ..sdx_model::Update::default()
    });
    s.node(b).unwrap().change(case_id, &ack, "test:acknowledge").await.unwrap();
    let mila_node = s.node(m).unwrap();
    for _ in 0..100 {
        if mila_node.case(case_id).await.unwrap().unwrap().case.status == Status::Acknowledged {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let system = Stretched::new(&m.system, !read_first);
    let conn = s.connector(m, system.clone()).unwrap();
    let (fed, polled) = if read_first {
        // The MiLa's connector polls its system (an internal note makes the ticket one it reads) and, while that
        // read is on its way, the feed brings the status.
        comment(&m.system, &ticket, false, "Interne Notiz, bleibt hier").await.unwrap();
        *system.hold.lock().unwrap() = Some(ticket.clone());
        let (polled, fed) = tokio::join!(conn.poll_system(), async {
            system.reading.notified().await;
            conn.follow_feed(Duration::from_secs(5)).await
        });
        (fed, polled)
    } else {
        // The MiLa's connector writes the status and, while the write is still unrecorded, polls its system.
        tokio::join!(conn.follow_feed(Duration::from_secs(5)), async {
            system.written.notified().await;
            conn.poll_system().await
        })
    };
    // A round that lost a race for the link is retried (transient); only the end state counts.
    for r in [fed, polled] {
        if let Err(e) = r {
            assert!(e.is_transient(), "{e}");
        }
    }
    settle(&mc, &bc).await;

    let at_mila = mila_node.case(case_id).await.unwrap().unwrap().case;
    assert_eq!(at_mila.status, Status::Acknowledged, "the BeLa's status stands: {:?}", at_mila.status_history);
    let last = at_mila.status_history.last().unwrap();
    assert_eq!(last.changed_by.to_string(), b.file.organisation, "no change of the MiLa's after it");
    let mt = m.system.get(&ticket).await.unwrap();
    assert_eq!(mt.status, m.status(Status::Acknowledged));
    assert!(!mt.comments.iter().any(|c| c.text.contains("SDX-Connector")), "nothing to report: {:?}", mt.comments);
    s.stop().await;
}
