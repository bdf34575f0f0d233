//! What two real `sdx serve` processes say about themselves: a MiLa and a BeLa node, `SDX_LOG=debug` and
//! `SDX_LOG_FORMAT=json`, forward a case whose requester has distinctive name, e-mail and phone strings. Neither
//! node's stderr nor `/metrics` contains them; every stderr line is a JSON object; there are no ANSI escapes;
//! the request spans and the metrics are there. A node started with text logs writes no colour codes either,
//! because its stderr is not a terminal.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sdx_crypto::{Alg, PrivateKey};
use sdx_model::sample::{self, BELA, MILA};
use sdx_model::{CaseId, OrgKey, Requester};
use sdx_node::pki::Ca;
use serde_json::{Value, json};

const TOKEN: &str = "observability-test-token";
const NAME: &str = "Zacharias Quellenbrunn-Osterholt";
const EMAIL: &str = "zq.marker-7731@example.invalid";
const PHONE: &str = "+49 30 7731 9942";

/// Write CA, keys, certificates and settings for MiLa and BeLa on fixed loopback ports. Returns the two settings
/// files and the local API base URLs.
fn federation(d: &Path) -> [(PathBuf, String); 2] {
    let ca = Ca::generate("SDX observability test").unwrap();
    std::fs::write(d.join("ca.pem"), ca.cert_pem()).unwrap();
    let ports: Vec<u16> = {
        let ls: Vec<TcpListener> = (0..4).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
        ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
    };
    let keys = [PrivateKey::generate(Alg::Es256).unwrap(), PrivateKey::generate(Alg::Es256).unwrap()];
    let names = ["mila", "bela"];
    let orgs = [MILA, BELA];
    for i in 0..2 {
        std::fs::write(d.join(format!("{}.jwk", names[i])), keys[i].public_key(Alg::Es256).unwrap().to_jwk_string())
            .unwrap();
    }
    let token = sdx_node::protocol::sha256(TOKEN.as_bytes());
    std::array::from_fn(|i| {
        let (me, other) = (i, 1 - i);
        let nd = d.join(names[me]);
        std::fs::create_dir_all(&nd).unwrap();
        let cert = ca.issue_node(&OrgKey::parse(orgs[me]).unwrap(), &[]).unwrap();
        std::fs::write(nd.join("tls.crt"), cert.cert_pem()).unwrap();
        std::fs::write(nd.join("tls.key"), cert.key_pem()).unwrap();
        std::fs::write(nd.join("signing.pem"), keys[me].to_pkcs8_pem()).unwrap();
        let (peer_port, api_port) = (ports[2 * me], ports[2 * me + 1]);
        let toml = format!(
            "[node]\norg = \"{}\"\nlisten = \"127.0.0.1:{peer_port}\"\n\
             [keys]\nsigning_key = \"signing.pem\"\ntls_cert = \"tls.crt\"\ntls_key = \"tls.key\"\nfederation_ca = \"../ca.pem\"\n\
             [storage]\nurl = \"sqlite://{}?mode=rwc\"\n\
             [api]\nlisten = \"127.0.0.1:{api_port}\"\nclients = [{{ name = \"test\", token_sha256 = \"{token}\" }}]\n\
             [delivery]\nbackoff_initial_ms = 50\nbackoff_max_ms = 1000\n\
             [[peers]]\norg = \"{}\"\nurl = \"https://localhost:{}\"\nsigning_key = \"../{}.jwk\"\n",
            orgs[me],
            nd.join("node.db").display(),
            orgs[other],
            ports[2 * other],
            names[other],
        );
        let config = nd.join("node.toml");
        std::fs::write(&config, toml).unwrap();
        (config, format!("http://127.0.0.1:{api_port}"))
    })
}

/// `sdx serve` with stderr into `log`, started once both listeners are bound.
struct Node(Child);

impl Node {
    fn start(config: &Path, log: &Path, json: bool) -> Node {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sdx"));
        cmd.args(["serve", "--config", config.to_str().unwrap()])
            .env("SDX_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap());
        if json {
            cmd.env("SDX_LOG_FORMAT", "json");
        } else {
            cmd.env_remove("SDX_LOG_FORMAT");
        }
        let mut child = cmd.spawn().expect("sdx serve starts");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut lines = String::new();
        for _ in 0..2 {
            if out.read_line(&mut lines).unwrap() == 0 {
                let _ = child.kill();
                panic!("did not start:\n{}", std::fs::read_to_string(log).unwrap_or_default());
            }
        }
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Node(child)
    }

    /// SIGTERM and wait for a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status().unwrap();
        assert!(status.success());
        let status = self.0.wait().unwrap();
        assert!(status.success(), "{status:?}");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_personal_data_in_logs_or_metrics_and_logs_are_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let [(m_cfg, m_api), (b_cfg, b_api)] = federation(d);
    let (m_log, b_log) = (d.join("mila.log"), d.join("bela.log"));
    let mila = Node::start(&m_cfg, &m_log, true);
    let bela = Node::start(&b_cfg, &b_log, true);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();

    // MiLa forwards a case with a distinctive requester and waits for BeLa's signed receipt.
    let mut case = sample::typical_case();
    case.case_id = CaseId::new_random();
    case.requester = Some(Requester {
        name: Some(NAME.into()),
        email: Some(EMAIL.into()),
        phone: Some(PHONE.into()),
        language: Some("de".into()),
    });
    let r = http
        .post(format!("{m_api}/api/v1/cases?waitForReceipt=15"))
        .bearer_auth(TOKEN)
        .json(&json!({ "case": case, "note": "Bitte übernehmen." }))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!((status.as_u16(), &body["delivered"]), (201, &json!(true)), "{body}");
    // BeLa holds it, requester included (so the strings did pass through both nodes).
    let r = http.get(format!("{b_api}/api/v1/cases/{}", case.case_id)).bearer_auth(TOKEN).send().await.unwrap();
    let held: Value = r.json().await.unwrap();
    assert_eq!(held["case"]["requester"]["email"], EMAIL, "{held}");

    let mut metrics = Vec::new();
    for api in [&m_api, &b_api] {
        assert_eq!(http.get(format!("{api}/healthz")).send().await.unwrap().status(), 200);
        assert_eq!(http.get(format!("{api}/readyz")).send().await.unwrap().status(), 200);
        metrics.push(http.get(format!("{api}/metrics")).send().await.unwrap().text().await.unwrap());
    }
    assert!(
        metrics[0]
            .contains(r#"sdx_http_requests_total{listener="api",method="POST",route="/api/v1/cases",status="201"} 1"#),
        "{}",
        metrics[0]
    );
    let peer_requests = r#"sdx_http_requests_total{listener="peer",method="POST""#;
    assert!(metrics[1].contains(peer_requests), "{}", metrics[1]);
    // The engines record too: MiLa's delivery (with its latency), BeLa's applied message.
    let delivered = format!(r#"sdx_delivery_attempts_total{{peer="{BELA}",outcome="delivered"}} 1"#);
    assert!(metrics[0].contains(&delivered), "{}", metrics[0]);
    assert!(
        metrics[0].contains(&format!(r#"sdx_delivery_latency_seconds_count{{peer="{BELA}"}} 1"#)),
        "{}",
        metrics[0]
    );
    assert!(metrics[1].contains("sdx_apply_latency_seconds_count 1"), "{}", metrics[1]);
    mila.stop();
    bela.stop();

    for (name, log, text) in [("mila", &m_log, &metrics[0]), ("bela", &b_log, &metrics[1])] {
        let stderr = std::fs::read_to_string(log).unwrap();
        for secret in [NAME, EMAIL, PHONE, "Quellenbrunn", "marker-7731", "7731 9942"] {
            assert!(!stderr.contains(secret), "{name}'s log contains `{secret}`");
            assert!(!text.contains(secret), "{name}'s metrics contain `{secret}`");
        }
        assert!(!stderr.contains('\u{1b}'), "{name}'s log has ANSI escapes");
        let mut lines = 0;
        let mut spans = 0;
        for line in stderr.lines().filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {line}"));
            assert!(v["timestamp"].is_string() && v["level"].is_string(), "{name}: {line}");
            if v["message"] == "answered" && v["span"]["route"].is_string() {
                spans += 1;
                assert!(v["status"].is_number() && v["latency_ms"].is_number(), "{name}: {line}");
            }
            lines += 1;
        }
        assert!(lines > 10, "{name}: debug logging wrote {lines} lines");
        assert!(spans > 0, "{name}: no request span with its route in\n{stderr}");
    }
    // BeLa's peer endpoint names the calling organisation in its request spans.
    let bela_log = std::fs::read_to_string(&b_log).unwrap();
    assert!(bela_log.contains(&format!(r#""peer":"{MILA}""#)), "no peer organisation in BeLa's request spans");

    // Text logs off a terminal: no colour codes either.
    let text_log = d.join("mila-text.log");
    Node::start(&m_cfg, &text_log, false).stop();
    let text = std::fs::read_to_string(&text_log).unwrap();
    assert!(text.contains(" INFO ") && text.contains("node started"), "{text}");
    assert!(!text.contains('\u{1b}'), "ANSI escapes in a text log written to a file:\n{text}");
}
