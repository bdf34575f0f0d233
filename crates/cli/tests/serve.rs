//! `sdx serve` as a real process: a peer posts a sealed forward over mutual TLS and gets a signed receipt;
//! after `kill -9` and a restart the node still knows the message (same receipt, applied once) and refuses a
//! replay with other content; SIGTERM stops it cleanly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use sdx_crypto::{Alg, PrivateKey};
use sdx_model::sample::{self, BELA, MILA};
use sdx_model::{Body, OrgKey, ReceiptResult};
use sdx_node::peer_api::MESSAGES_PATH;
use sdx_node::pki::Ca;
use sdx_node::protocol::{self, Identity};
use sdx_node::tls;

fn start(config: &Path) -> (Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sdx"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sdx serve starts");
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    // Keep reading stdout in the background so the node never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let port = line.trim().rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{line}"));
    (child, port)
}

#[tokio::test]
async fn serve_receives_durably_across_kill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (mila, bela) = (OrgKey::parse(MILA).unwrap(), OrgKey::parse(BELA).unwrap());
    let ca = Ca::generate("SDX test federation").unwrap();
    std::fs::write(d.join("ca.pem"), ca.cert_pem()).unwrap();
    let b_cert = ca.issue_node(&bela, &[]).unwrap();
    std::fs::write(d.join("bela.crt"), b_cert.cert_pem()).unwrap();
    std::fs::write(d.join("bela.key"), b_cert.key_pem()).unwrap();
    let b_sig = PrivateKey::generate(Alg::Es256).unwrap();
    std::fs::write(d.join("bela-sig.pem"), b_sig.to_pkcs8_pem()).unwrap();
    let b_pub = b_sig.public_key(Alg::Es256).unwrap();
    let m_sig = PrivateKey::generate(Alg::Es256).unwrap();
    std::fs::write(d.join("mila.jwk"), m_sig.public_key(Alg::Es256).unwrap().to_jwk_string()).unwrap();
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
clients = []
[[peers]]
org = "{MILA}"
url = "https://localhost:1"
signing_key = "mila.jwk"
"#,
            d.join("bela.db").display()
        ),
    )
    .unwrap();

    let m_cert = ca.issue_node(&mila, &[]).unwrap();
    let client = tls::http_client(&m_cert, ca.cert_pem()).unwrap();
    let me = Identity { org: mila.clone(), name: None, signing_key: m_sig };
    let m = sample::typical_forward();
    let sealed = me.seal(&m).unwrap();
    let post = |port: u16, body: String| {
        let client = client.clone();
        async move {
            let r = client.post(format!("https://localhost:{port}{MESSAGES_PATH}")).body(body).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap().to_vec()
        }
    };

    let (mut child, port) = start(&config);
    let receipt = post(port, sealed.jws.clone()).await;
    let (_, r) =
        protocol::open_receipt(&receipt, &b_pub, &bela, &mila, m.header.message_id, &sealed.digest).expect("receipt");
    assert_eq!(r.result, ReceiptResult::Accepted);

    // Crash and restart: the message is still there; the retry gets the very same receipt.
    child.kill().unwrap();
    child.wait().unwrap();
    let (child, port) = start(&config);
    let again = post(port, sealed.jws.clone()).await;
    assert_eq!(again, receipt, "the stored receipt is returned again");

    // Other content under the same message id is a replay.
    let mut other = m.clone();
    if let Body::Forward(f) = &mut other.body {
        f.note = Some("anders".into());
    }
    let replay = me.seal(&other).unwrap();
    let answer = post(port, replay.jws.clone()).await;
    let (_, r) = protocol::open_receipt(&answer, &b_pub, &bela, &mila, m.header.message_id, &replay.digest)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.result, ReceiptResult::Rejected);
    assert_eq!(r.errors[0].code, sdx_model::ErrorCode::Replay);

    // SIGTERM: a clean stop. (The server gives open connections up to 10 s to finish; our idle keep-alive
    // connection uses that up, so this takes about 10 s.)
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
}
