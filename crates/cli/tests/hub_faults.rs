//! A hub killed with SIGKILL mid-stream, and a member down while the hub holds its messages (issue 9, *Bad input and
//! faults*): three `sdx serve` processes — MiLa and BeLa behind the hub `hub:test`, every peer and responsibility
//! from one signed directory, messages encrypted end to end — on fixed loopback ports, each with its own SQLite
//! file, driven only through their local HTTP APIs.
//!
//! MiLa creates cases without assignee (routed by the directory to BeLa) at a steady pace. The hub is killed with
//! `kill -9` and started again on its database twice: once with both members up, once while BeLa is down (from a
//! third to two thirds of the way) and the hub holds MiLa's messages in its outbox (it answered 202). MiLa waits
//! 300 s before it would send a queued message again, so within the test's two minutes every receipt must come
//! from the hub's outbox surviving the kill and pushing BeLa's receipts. At the end every case is at BeLa exactly once (one `messageReceived` each), every
//! delivery at MiLa is delivered (none pending, none dead), and the hub's outbox holds one delivered envelope per
//! case and nothing open; the hub's log and database hold none of the cases' content. Each node's log goes to
//! `<name>.log` in the test's temporary directory, kept and printed if the test fails.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sdx_crypto::{Alg, PrivateKey};
use sdx_model::sample::{self, BELA, MILA};
use sdx_model::{CaseId, OrgKey};
use sdx_node::pki::Ca;
use serde_json::{Value, json};

const HUB: &str = "hub:test";
const TOKEN: &str = "hub-fault-test-token";
const CASES: usize = 45;

struct Node {
    name: &'static str,
    config: PathBuf,
    log: PathBuf,
    api: String,
    child: Option<Child>,
}

impl Node {
    /// Start `sdx serve` and wait for the two lines it prints once both listeners are bound.
    fn start(&mut self) {
        assert!(self.child.is_none(), "{} runs already", self.name);
        let log = OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sdx"))
            .args(["serve", "--config", self.config.to_str().unwrap()])
            .env("SDX_LOG", "info,sqlx=warn")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("sdx serve starts");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut lines = String::new();
        for _ in 0..2 {
            if out.read_line(&mut lines).unwrap() == 0 {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not start:\n{}", self.name, tail(&self.log, 40));
            }
        }
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        self.child = Some(child);
    }

    /// `kill -9`: no shutdown, no flush.
    fn kill9(&mut self) {
        let mut c = self.child.take().unwrap_or_else(|| panic!("{} is not running", self.name));
        c.kill().unwrap();
        c.wait().unwrap();
    }

    async fn get(&self, http: &reqwest::Client, path: &str) -> Value {
        let r = http.get(format!("{}{path}", self.api)).bearer_auth(TOKEN).send().await;
        let r = r.unwrap_or_else(|e| panic!("{}: GET {path}: {e}", self.name));
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{}: GET {path}: {status}: {v}", self.name);
        v
    }

    async fn deliveries(&self, http: &reqwest::Client, state: &str) -> Vec<Value> {
        let v = self.get(http, &format!("/api/v1/deliveries?state={state}&limit=500")).await;
        v["items"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The three nodes and their directory; on a failing test the logs are printed and the directory kept.
struct Federation {
    mila: Node,
    bela: Node,
    hub: Node,
    dir: Option<tempfile::TempDir>,
}

impl Drop for Federation {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            for n in [&self.mila, &self.bela, &self.hub] {
                eprintln!("---- last lines of {} ----\n{}", n.log.display(), tail(&n.log, 30));
            }
            eprintln!("---- kept {} for inspection", dir.keep().display());
        }
    }
}

/// Write the CA, keys, certificates, the signed directory and the three nodes' settings; start nothing.
fn federation() -> Federation {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::generate("SDX hub fault test").unwrap();
    std::fs::write(d.join("ca.pem"), ca.cert_pem()).unwrap();
    let ports: Vec<u16> = {
        let ls: Vec<TcpListener> = (0..6).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
        ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
    };
    let authority = PrivateKey::generate(Alg::Es256).unwrap();
    std::fs::write(d.join("authority.jwk"), authority.public_key(Alg::Es256).unwrap().to_jwk_string()).unwrap();
    let orgs =
        [("mila", MILA, ports[0], ports[1]), ("bela", BELA, ports[2], ports[3]), ("hub", HUB, ports[4], ports[5])];
    let mut entries = Vec::new();
    let mut keys = Vec::new();
    for (name, org, peer, _) in orgs {
        let signing = PrivateKey::generate(Alg::Es256).unwrap();
        let public = signing.public_key(Alg::Es256).unwrap();
        std::fs::write(d.join(format!("{name}.jwk")), public.to_jwk_string()).unwrap();
        let mut entry = json!({"key": org, "name": name, "roles": ["member"], "signingKeys": [public.to_jwk()]});
        let encryption = if org == HUB {
            entry["roles"] = json!(["hub"]);
            entry["endpoint"] = json!(format!("https://localhost:{peer}/sdx/v1"));
            None
        } else {
            let e = PrivateKey::generate(Alg::RsaOaep256).unwrap();
            entry["endpoint"] = json!({"viaHub": HUB});
            entry["encryptionKeys"] = json!([e.public_key(Alg::RsaOaep256).unwrap().to_jwk()]);
            Some(e)
        };
        entries.push(entry);
        keys.push((signing, encryption));
    }
    let now = sdx_model::Timestamp::now();
    let expires = sdx_model::Timestamp::from_offset_date_time(now.as_offset_date_time() + Duration::from_secs(86_400));
    let document = json!({
        "schemaVersion": "1.0", "version": 1, "issuedAt": now, "expiresAt": expires, "issuer": "dir:test",
        "organisations": entries,
        "responsibilities": [{"services": [{"leikaKey": "99107004017000"}], "regions": ["nationwide"],
            "level": "secondLevel", "organisation": BELA}],
    });
    let directory = sdx_directory::Directory::from_json(document.to_string().as_bytes()).unwrap();
    std::fs::write(d.join("directory.jws"), sdx_directory::sign(&directory, &authority).unwrap()).unwrap();

    let token = sdx_node::protocol::sha256(TOKEN.as_bytes());
    let mut nodes = Vec::new();
    for ((name, org, peer, api), (signing, encryption)) in orgs.into_iter().zip(keys) {
        let nd = d.join(name);
        std::fs::create_dir_all(&nd).unwrap();
        let cert = ca.issue_node(&OrgKey::parse(org).unwrap(), &[]).unwrap();
        std::fs::write(nd.join("tls.crt"), cert.cert_pem()).unwrap();
        std::fs::write(nd.join("tls.key"), cert.key_pem()).unwrap();
        std::fs::write(nd.join("signing.pem"), signing.to_pkcs8_pem()).unwrap();
        let (role, extra_keys, peers) = match encryption {
            Some(e) => {
                std::fs::write(nd.join("encryption.pem"), e.to_pkcs8_pem()).unwrap();
                ("node", "encryption_key = \"encryption.pem\"\n".to_string(), String::new())
            }
            None => {
                let peer = |o: &str, n: &str, p: u16| {
                    format!("[[peers]]\norg = \"{o}\"\nurl = \"https://localhost:{p}\"\nsigning_key = \"../{n}.jwk\"\n")
                };
                ("hub", String::new(), peer(MILA, "mila", ports[0]) + &peer(BELA, "bela", ports[2]))
            }
        };
        let toml = format!(
            "[node]\norg = \"{org}\"\nlisten = \"127.0.0.1:{peer}\"\nrole = \"{role}\"\n\
             [keys]\nsigning_key = \"signing.pem\"\ntls_cert = \"tls.crt\"\ntls_key = \"tls.key\"\n\
             federation_ca = \"../ca.pem\"\n{extra_keys}\
             [storage]\nurl = \"sqlite://{}?mode=rwc\"\n\
             [api]\nlisten = \"127.0.0.1:{api}\"\nclients = [{{ name = \"test\", token_sha256 = \"{token}\" }}]\n\
             [delivery]\nbackoff_initial_ms = 100\nbackoff_max_ms = 1000\ndead_after_s = 3600\nhub_receipt_wait_s = 300\n\
             [directory]\nsource = \"../directory.jws\"\nauthority_keys = [\"../authority.jwk\"]\nissuer = \"dir:test\"\n\
             {peers}",
            nd.join(format!("{name}.db")).display(),
        );
        let config = nd.join("node.toml");
        std::fs::write(&config, toml).unwrap();
        nodes.push(Node {
            name,
            config,
            log: d.join(format!("{name}.log")),
            api: format!("http://127.0.0.1:{api}"),
            child: None,
        });
    }
    let hub = nodes.pop().unwrap();
    let bela = nodes.pop().unwrap();
    let mila = nodes.pop().unwrap();
    Federation { mila, bela, hub, dir: Some(dir) }
}

/// A case without assignee: the directory routes it to BeLa.
fn unassigned() -> (CaseId, Value) {
    let mut case = serde_json::to_value(sample::typical_case()).unwrap();
    let id = CaseId::new_random();
    case["caseId"] = json!(id);
    let o = case.as_object_mut().unwrap();
    o.remove("assignee");
    o.get_mut("parties").unwrap().as_array_mut().unwrap().retain(|p| p["organisation"] == MILA);
    (id, json!({"case": case}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_killed_mid_stream_and_a_member_down_lose_nothing_and_apply_nothing_twice() {
    let mut fed = federation();
    for n in [&mut fed.hub, &mut fed.mila, &mut fed.bela] {
        n.start();
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut ids = Vec::new();
    for i in 0..CASES {
        if i == CASES / 6 || i == CASES / 2 {
            // The second time BeLa is down and the hub holds MiLa's messages in its outbox.
            fed.hub.kill9();
            tokio::time::sleep(Duration::from_millis(500)).await;
            fed.hub.start();
        }
        if i == CASES / 3 {
            fed.bela.kill9();
        }
        if i == 2 * CASES / 3 {
            fed.bela.start();
        }
        let (id, body) = unassigned();
        let r = http.post(format!("{}/api/v1/cases", fed.mila.api)).bearer_auth(TOKEN).json(&body).send().await;
        let r = r.expect("MiLa's API answers throughout");
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!((status, v["routing"]["assignee"].as_str()), (201, Some(BELA)), "case {i}: {v}");
        ids.push(id);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Everything arrives: MiLa's outbox empties, all delivered.
    let t = Instant::now();
    loop {
        let (pending, dead) = (fed.mila.deliveries(&http, "pending").await, fed.mila.deliveries(&http, "dead").await);
        assert!(dead.is_empty(), "dead letters at MiLa: {dead:?}");
        if pending.is_empty() {
            break;
        }
        let first = pending.first();
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "MiLa still waits for {} receipts, e.g. {first:?}",
            pending.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(fed.mila.deliveries(&http, "delivered").await.len(), CASES);
    // The hub took some of them into its outbox while BeLa was down.
    let metrics = http.get(format!("{}/metrics", fed.mila.api)).send().await.unwrap().text().await.unwrap();
    let queued = format!("sdx_delivery_attempts_total{{peer=\"{BELA}\",outcome=\"queued\"}}");
    assert!(metrics.lines().any(|l| l.starts_with(&queued)), "no message was queued at the hub: {metrics}");

    // Each case at BeLa exactly once, applied once.
    for id in &ids {
        let v = fed.bela.get(&http, &format!("/api/v1/cases/{id}")).await;
        let received = v["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == "messageReceived").count();
        assert_eq!(received, 1, "case {id} at BeLa: {v}");
    }
    let listed = fed.bela.get(&http, "/api/v1/cases?limit=500").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), CASES, "BeLa holds exactly the cases sent");

    // The hub: one delivered envelope per case to BeLa, nothing open, nothing dead.
    let t = Instant::now();
    loop {
        if fed.hub.deliveries(&http, "pending").await.is_empty() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "the hub still holds deliveries");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(fed.hub.deliveries(&http, "dead").await.is_empty());
    let to_bela = fed.hub.deliveries(&http, "delivered").await.into_iter().filter(|d| d["peer"] == BELA).count();
    assert_eq!(to_bela, CASES, "the hub delivered each case once");

    // The hub's log and files (database, WAL) hold none of the cases' content; MiLa's do (the search works).
    let case = sample::typical_case();
    let needles = [case.subject.as_str(), case.description.as_str(), "Erika Mustermann"];
    let found = |node: &Node| {
        let mut kept = std::fs::read(&node.log).unwrap_or_default();
        for e in std::fs::read_dir(node.config.parent().unwrap()).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                kept.extend(std::fs::read(p).unwrap());
            }
        }
        needles.iter().filter(|n| kept.windows(n.len()).any(|w| w == n.as_bytes())).count()
    };
    assert!(std::fs::metadata(&fed.hub.log).unwrap().len() > 0, "the hub logged");
    assert_eq!(found(&fed.hub), 0, "the hub keeps case content");
    assert_eq!(found(&fed.mila), needles.len(), "MiLa keeps its cases");
}
