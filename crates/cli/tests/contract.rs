//! The contract test: schemathesis (property-based, `--checks all`) against a real `sdx serve` process, over
//! the node's own OpenAPI document — the local API once with a valid bearer token and once without, and the
//! peer endpoint over mutual TLS with a configured peer's client certificate. It passes only if every answer
//! conforms to the document (statuses, content types, headers, schemas) and no request gets a 5xx.
//!
//! The schemathesis binary comes from `SDX_SCHEMATHESIS` (its path); `./scripts/test.sh` installs a pinned
//! version into a virtual environment and sets it. Without it this test fails and says how to get it: a
//! contract that was not checked is not a pass. Everything it writes lives in a temporary directory that is
//! removed at the end; the node is stopped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use sdx_crypto::{Alg, PrivateKey};
use sdx_model::OrgKey;
use sdx_model::sample::{BELA, MILA};
use sdx_node::pki::Ca;

const TOKEN: &str = "contract-test-token-0123456789";

/// The node, stopped when dropped.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A BeLa node with MiLa as its configured peer, its local API token and the files schemathesis needs.
fn start(d: &Path) -> (Node, u16, u16) {
    let (mila, bela) = (OrgKey::parse(MILA).unwrap(), OrgKey::parse(BELA).unwrap());
    let ca = Ca::generate("SDX contract test federation").unwrap();
    std::fs::write(d.join("ca.pem"), ca.cert_pem()).unwrap();
    let b_cert = ca.issue_node(&bela, &[]).unwrap();
    std::fs::write(d.join("bela.crt"), b_cert.cert_pem()).unwrap();
    std::fs::write(d.join("bela.key"), b_cert.key_pem()).unwrap();
    let m_cert = ca.issue_node(&mila, &[]).unwrap();
    std::fs::write(d.join("mila.crt"), m_cert.cert_pem()).unwrap();
    std::fs::write(d.join("mila.key"), m_cert.key_pem()).unwrap();
    let b_sig = PrivateKey::generate(Alg::Es256).unwrap();
    std::fs::write(d.join("bela-sig.pem"), b_sig.to_pkcs8_pem()).unwrap();
    let m_sig = PrivateKey::generate(Alg::Es256).unwrap();
    std::fs::write(d.join("mila.jwk"), m_sig.public_key(Alg::Es256).unwrap().to_jwk_string()).unwrap();
    let token_hash = sdx_node::protocol::sha256(TOKEN.as_bytes());
    let config = d.join("bela.toml");
    std::fs::write(
        &config,
        format!(
            r#"[node]
org = "{BELA}"
listen = "127.0.0.1:0"
[keys]
signing_key = "bela-sig.pem"
tls_cert = "bela.crt"
tls_key = "bela.key"
federation_ca = "ca.pem"
[storage]
url = "sqlite://{}?mode=rwc"
[api]
listen = "127.0.0.1:0"
feed_max_wait_s = 1
[[api.clients]]
name = "contract"
token_sha256 = "{token_hash}"
[[peers]]
org = "{MILA}"
url = "https://localhost:1"
signing_key = "mila.jwk"
"#,
            d.join("bela.db").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sdx"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("SDX_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sdx serve starts");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut port = || {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        line.trim().rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).unwrap_or_else(|| panic!("{line}"))
    };
    let (peer, api) = (port(), port());
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (Node(child), peer, api)
}

/// Run schemathesis with its settings file and these arguments; panics with its output unless it passes.
fn schemathesis(bin: &str, what: &str, args: &[&str]) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract/schemathesis.toml");
    let out =
        Command::new(bin).arg("--config-file").arg(config).arg("run").args(args).output().expect("schemathesis runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis, {what}: {}\n{text}", out.status);
    println!("schemathesis, {what}: passed\n{}", text.lines().rev().take(3).collect::<Vec<_>>().join("\n"));
}

#[test]
fn the_node_keeps_its_openapi_contract() {
    let Some(bin) = std::env::var_os("SDX_SCHEMATHESIS") else {
        panic!(
            "SDX_SCHEMATHESIS is not set: this test runs schemathesis against a real node. Run ./scripts/test.sh \
             (it installs schemathesis into a virtual environment), or set SDX_SCHEMATHESIS to the path of a \
             schemathesis binary of the version pinned in scripts/test.sh"
        )
    };
    let bin = bin.to_str().expect("a UTF-8 path");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let doc = d.join("openapi.json");
    std::fs::write(&doc, serde_json::to_string_pretty(&sdx_node::openapi::document()).unwrap()).unwrap();
    let (_node, peer, api) = start(d);
    let doc = doc.to_str().unwrap();
    let api_url = format!("http://127.0.0.1:{api}");
    let report = d.join("report");
    let report = report.to_str().unwrap();
    let common = ["--checks", "all", "--seed", "1", "--report-dir", report];
    let local = ["--url", &api_url, "--include-path-regex", "^/api/"];
    let auth = format!("Authorization: Bearer {TOKEN}");
    schemathesis(bin, "local API with a token", &[&[doc][..], &common, &local, &["-H", &auth]].concat());
    schemathesis(bin, "local API without a token", &[&[doc][..], &common, &local].concat());
    let peer_url = format!("https://localhost:{peer}");
    let (cert, key, ca) = (d.join("mila.crt"), d.join("mila.key"), d.join("ca.pem"));
    let tls = [
        "--url",
        &peer_url,
        "--include-path-regex",
        "^/sdx/",
        "--request-cert",
        cert.to_str().unwrap(),
        "--request-cert-key",
        key.to_str().unwrap(),
        "--tls-verify",
        ca.to_str().unwrap(),
    ];
    schemathesis(bin, "peer endpoint over mutual TLS", &[&[doc][..], &common, &tls].concat());
}
