//! What the federation tests share (`directory.rs`, `hub.rs`): organisations with keys and certificates, a signed
//! directory file they all read, nodes started through `App::build` with their local API on port 0.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use sdx_crypto::{Alg, PrivateKey};
use sdx_directory::Directory;
use sdx_model::*;
use sdx_node::app::App;
use sdx_node::pki::Ca;
use sdx_node::settings::Settings;

pub const TOKEN: &str = "directory-test-token";
/// Responsible in Schleswig-Holstein (region `01`) once the second directory names it.
pub const KREIS: &str = "psw:01060002";

pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// What the organisations of a test federation share: the CA, the directory authority's key (its public JWK
/// written to `authority_jwk`) and the directory file they all read (`file`, written by the test).
pub struct Shared {
    pub ca: Ca,
    pub authority: PrivateKey,
    pub authority_jwk: PathBuf,
    pub file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Shared {
    pub fn new() -> Shared {
        let dir = tempfile::tempdir().unwrap();
        let authority = PrivateKey::generate(Alg::Es256).unwrap();
        let authority_jwk = dir.path().join("authority.jwk");
        std::fs::write(&authority_jwk, authority.public_key(Alg::Es256).unwrap().to_jwk_string()).unwrap();
        Shared {
            ca: Ca::generate("SDX test federation").unwrap(),
            authority,
            authority_jwk,
            file: dir.path().join("directory.jws"),
            _dir: dir,
        }
    }
}

/// An organisation of a test federation: its key, peer address, keys and node directory.
pub struct Org {
    pub key: &'static str,
    pub addr: SocketAddr,
    pub signing: PrivateKey,
    /// Its RSA-OAEP-256 key, for messages through a hub.
    pub encryption: Option<PrivateKey>,
    pub dir: tempfile::TempDir,
    /// Its PostgreSQL schema ([`Org::on`]); `None`: an SQLite file in `dir`.
    pub schema: Option<String>,
    cert: std::sync::OnceLock<sdx_node::pki::NodeCert>,
}

/// Which store the nodes of a test use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// What else goes into an [`Org`]'s settings.
#[derive(Default)]
pub struct Options {
    /// `role = "hub"`.
    pub hub: bool,
    /// `[[peers]]`: organisation, peer address, signing JWK.
    pub peers: Vec<(String, SocketAddr, String)>,
    /// More API clients besides `test` (token [`TOKEN`], all cases): name, token, further keys of the inline
    /// table (e.g. `cases = "own"`).
    pub clients: Vec<(String, String, String)>,
}

impl Org {
    pub fn new(key: &'static str) -> Org {
        Org {
            key,
            addr: free_addr(),
            signing: PrivateKey::generate(Alg::Es256).unwrap(),
            encryption: None,
            dir: tempfile::tempdir().unwrap(),
            schema: None,
            cert: std::sync::OnceLock::new(),
        }
    }

    /// Its node on `db` (PostgreSQL: a schema of its own on the test server, the same after a restart).
    pub fn on(self, db: Db) -> Org {
        match db {
            Db::Sqlite => self,
            Db::Postgres => Org { schema: Some(sdx_testkit::pg::schema_name()), ..self },
        }
    }

    /// Everything its node keeps — the files in its directory and, on PostgreSQL, every row of its schema — with
    /// every base64url run in it decoded as well (a JWS payload is base64url, not a disguise).
    pub async fn kept(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                all.extend(std::fs::read(p).unwrap());
            }
        }
        if let Some(schema) = &self.schema {
            all.extend(sdx_testkit::pg::schema_text(schema).await.into_bytes());
        }
        let decoded = decode_base64url_runs(&all);
        all.extend(decoded);
        all
    }

    /// With an RSA-OAEP-256 key (members behind a hub).
    pub fn with_encryption(key: &'static str) -> Org {
        Org { encryption: Some(PrivateKey::generate(Alg::RsaOaep256).unwrap()), ..Org::new(key) }
    }

    /// Its TLS certificate (made once).
    pub fn cert(&self, ca: &Ca) -> sdx_node::pki::NodeCert {
        self.cert.get_or_init(|| ca.issue_node(&OrgKey::parse(self.key).unwrap(), &[]).unwrap()).clone()
    }

    /// Its public signing key as a JWK text.
    pub fn jwk(&self) -> String {
        self.signing.public_key(Alg::Es256).unwrap().to_jwk_string()
    }

    /// Its directory entry (a member with its own endpoint, unless `extra` says otherwise).
    pub fn entry(&self, extra: Value) -> Value {
        let mut o = json!({
            "key": self.key,
            "name": format!("Node {}", self.key),
            "roles": ["member"],
            "endpoint": format!("https://localhost:{}/sdx/v1", self.addr.port()),
            "signingKeys": [self.signing.public_key(Alg::Es256).unwrap().to_jwk()],
        });
        if let Some(k) = &self.encryption {
            o["encryptionKeys"] = json!([k.public_key(Alg::RsaOaep256).unwrap().to_jwk()]);
        }
        if let (Value::Object(o), Value::Object(x)) = (&mut o, extra) {
            o.extend(x);
        }
        o
    }

    /// Settings without peers, reading the directory `file` signed by `authority_jwk`.
    pub fn settings(&self, ca: &Ca, file: &Path, authority_jwk: &Path) -> Settings {
        self.settings_with(ca, file, authority_jwk, &Options::default())
    }

    /// Settings as [`Org::settings`], with `opts`.
    pub fn settings_with(&self, ca: &Ca, file: &Path, authority_jwk: &Path, opts: &Options) -> Settings {
        let d = self.dir.path();
        let cert = self.cert(ca);
        std::fs::write(d.join("ca.pem"), ca.cert_pem()).unwrap();
        std::fs::write(d.join("tls.crt"), cert.cert_pem()).unwrap();
        std::fs::write(d.join("tls.key"), cert.key_pem()).unwrap();
        std::fs::write(d.join("signing.pem"), self.signing.to_pkcs8_pem()).unwrap();
        let token = sdx_node::protocol::sha256(TOKEN.as_bytes());
        let role = if opts.hub { "hub" } else { "node" };
        let encryption = match &self.encryption {
            Some(k) => {
                std::fs::write(d.join("encryption.pem"), k.to_pkcs8_pem()).unwrap();
                "encryption_key = \"encryption.pem\"\n"
            }
            None => "",
        };
        let mut peers = String::new();
        for (i, (org, addr, jwk)) in opts.peers.iter().enumerate() {
            std::fs::write(d.join(format!("peer{i}.jwk")), jwk).unwrap();
            peers.push_str(&format!(
                "[[peers]]\norg = \"{org}\"\nurl = \"https://localhost:{}\"\nsigning_key = \"peer{i}.jwk\"\n",
                addr.port()
            ));
        }
        let mut clients = format!("{{ name = \"test\", token_sha256 = \"{token}\" }}");
        for (name, token, extra) in &opts.clients {
            let hash = sdx_node::protocol::sha256(token.as_bytes());
            clients.push_str(&format!(", {{ name = \"{name}\", token_sha256 = \"{hash}\", {extra} }}"));
        }
        let storage = match &self.schema {
            Some(schema) => format!("url = \"{}\"\nschema = \"{schema}\"", sdx_testkit::pg::server_url()),
            None => "url = \"sqlite://node.db?mode=rwc\"".to_string(),
        };
        let toml = format!(
            r#"[node]
org = "{}"
listen = "{}"
role = "{role}"
[keys]
signing_key = "signing.pem"
tls_cert = "tls.crt"
tls_key = "tls.key"
federation_ca = "ca.pem"
{encryption}[storage]
{storage}
[api]
listen = "127.0.0.1:0"
clients = [{clients}]
[directory]
source = "{}"
authority_keys = ["{}"]
issuer = "dir:test"
reload_s = 1
{peers}"#,
            self.key,
            self.addr,
            file.display(),
            authority_jwk.display()
        );
        let f = d.join("node.toml");
        std::fs::write(&f, toml).unwrap();
        Settings::load(Some(&f)).unwrap()
    }
}

/// A directory of `version` with `organisations` and `responsibilities`, signed by `key`.
pub fn signed(key: &PrivateKey, version: u64, organisations: Vec<Value>, responsibilities: Value) -> String {
    let doc = document(version, organisations, responsibilities);
    let dir = Directory::from_json(doc.to_string().as_bytes()).unwrap();
    sdx_directory::sign(&dir, key).unwrap()
}

/// The directory document (unsigned).
pub fn document(version: u64, organisations: Vec<Value>, responsibilities: Value) -> Value {
    json!({
        "schemaVersion": "1.0",
        "version": version,
        "issuedAt": "2026-01-01T00:00:00Z",
        "expiresAt": "2099-12-31T23:59:59Z",
        "issuer": "dir:test",
        "organisations": organisations,
        "responsibilities": responsibilities,
    })
}

pub struct Node {
    pub api: String,
    stop: tokio::sync::oneshot::Sender<()>,
    run: tokio::task::JoinHandle<Result<(), sdx_node::app::AppError>>,
}

pub async fn start(settings: Settings) -> Node {
    let app = App::build(settings).await.unwrap();
    let api = format!("http://{}", app.api_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    Node { api, stop, run }
}

impl Node {
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        self.run.await.unwrap().unwrap();
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call_as(TOKEN, method, path, body).await
    }

    /// [`Node::call`] with another client's token.
    pub async fn call_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut r = reqwest::Client::new().request(method, format!("{}{path}", self.api)).bearer_auth(token);
        if let Some(b) = body {
            r = r.json(b);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn metric(&self, line_start: &str) -> Option<f64> {
        let text = reqwest::get(format!("{}/metrics", self.api)).await.unwrap().text().await.unwrap();
        text.lines().find(|l| l.starts_with(line_start)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// Wait until `/metrics` shows directory version `v` (reloads run every second).
    pub async fn until_version(&self, v: u64) {
        let t = Instant::now();
        while self.metric("sdx_directory_version ").await != Some(v as f64) {
            assert!(t.elapsed() < Duration::from_secs(20), "directory version {v} not loaded");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Replace `path` with `text` at once (written aside, then renamed), so that a reload never reads half a file.
pub fn write(path: &PathBuf, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Wait until `n` has no pending delivery.
pub async fn settle(n: &Node) {
    let t = Instant::now();
    loop {
        let (_, v) = n.call(reqwest::Method::GET, "/api/v1/deliveries?state=pending", None).await;
        if v["items"].as_array().is_some_and(Vec::is_empty) {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "deliveries still pending: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `jws` with one character of its payload changed.
pub fn tamper(jws: &str) -> String {
    let mut parts: Vec<String> = jws.split('.').map(str::to_string).collect();
    let p = &mut parts[1];
    let i = p.len() / 2;
    let c = if &p[i..=i] == "A" { "B" } else { "A" };
    p.replace_range(i..=i, c);
    parts.join(".")
}

/// Every run of at least 16 base64url characters in `bytes`, decoded from each of its first four characters (a
/// run in a database page may start with a byte of the page: one of the four is aligned; the others are noise).
fn decode_base64url_runs(bytes: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let is_b64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
    let mut out = Vec::new();
    for run in bytes.split(|b| !is_b64(b)).filter(|r| r.len() >= 16) {
        for skip in 0..4 {
            let r = &run[skip..];
            if let Ok(d) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&r[..r.len() / 4 * 4]) {
                out.extend(d);
            }
        }
    }
    out
}
