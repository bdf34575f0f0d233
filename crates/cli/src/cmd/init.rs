//! `sdx init --org KEY --out DIR`: a new node directory, ready for `sdx serve --config DIR/node.toml` once its
//! TLS certificate and its peers are there — and the typed way every command of this tool builds a node's
//! settings ([`settings`]) and writes them ([`write_settings`]).
//!
//! | file | what | mode |
//! |---|---|---|
//! | `node.toml` | the settings, every section with its defaults; relative paths, loopback addresses | 0644 |
//! | `signing.key.pem` | the signing key (ES256, PKCS#8) | 0600 |
//! | `signing.pub.jwk` | its public key: the file to give to the peers | 0644 |
//! | `node.key.pem` | the TLS key (ECDSA P-256, PKCS#8) | 0600 |
//! | `node.crt.pem`, `ca.crt.pem` | with `--ca DIR --host NAME`: the TLS certificate and the federation CA's certificate | 0644 |
//! | `node.csr.pem` | without `--ca`: the certificate request for the federation CA (`sdx pki issue --csr`) | 0644 |
//! | `node.db` | made by the node when it first starts (SQLite; its `-wal` and `-shm` files likewise) | 0600 |
//!
//! A directory that `sdx init` creates gets mode 0700 (an existing empty one keeps its mode).
//!
//! One API token (client `ticket-system`) is made and printed once on standard output, and only its SHA-256 is
//! stored. A non-empty DIR is refused; if writing fails half-way, what was written is removed again.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use sdx_crypto::{Alg, PrivateKey};
use sdx_model::OrgKey;
use sdx_node::pki::{self, Ca, NodeRequest};
use sdx_node::settings::{
    ApiClient, ApiSettings, DeliverySettings, KeySettings, LimitSettings, NodeSettings, Settings, StorageSettings,
};
use serde::Serialize;

use crate::Outcome;

/// The settings file of a node directory.
pub const SETTINGS_FILE: &str = "node.toml";
/// The signing key (PKCS#8 PEM, secret).
pub const SIGNING_KEY_FILE: &str = "signing.key.pem";
/// Its public key as JWK, for the peers.
pub const SIGNING_JWK_FILE: &str = "signing.pub.jwk";
/// The SQLite database, relative to the settings file.
pub const DEFAULT_STORAGE: &str = "sqlite://node.db?mode=rwc";
/// The name of the API client `sdx init` makes a token for.
pub const DEFAULT_CLIENT: &str = "ticket-system";

/// Options of `sdx init`.
pub struct InitOptions {
    /// The organisation.
    pub org: OrgKey,
    /// The directory to write (new or empty).
    pub out: PathBuf,
    /// The organisation's name, for message headers.
    pub name: Option<String>,
    /// Issue the TLS certificate with the federation CA in this directory instead of writing a request.
    pub ca: Option<PathBuf>,
    /// DNS names for the TLS certificate (or the request).
    pub hosts: Vec<String>,
    /// IP addresses for the TLS certificate (or the request).
    pub ips: Vec<IpAddr>,
    /// Address of the peer endpoint.
    pub listen: SocketAddr,
    /// Address of the local API.
    pub api_listen: SocketAddr,
}

/// The settings of a node whose files lie in its directory under the names `sdx init` gives them (relative
/// paths: resolve them with [`Settings::resolve_paths`] before use), with no peers and the default delivery.
pub fn settings(
    org: OrgKey,
    name: Option<String>,
    listen: SocketAddr,
    api_listen: SocketAddr,
    storage: StorageSettings,
    clients: Vec<ApiClient>,
) -> Settings {
    Settings {
        node: NodeSettings { org, name, listen, role: Default::default() },
        keys: KeySettings {
            signing_key: SIGNING_KEY_FILE.into(),
            tls_cert: pki::NODE_CERT_FILE.into(),
            tls_key: pki::NODE_KEY_FILE.into(),
            federation_ca: pki::CA_CERT_FILE.into(),
            encryption_key: None,
        },
        storage,
        peers: Vec::new(),
        directory: None,
        delivery: DeliverySettings::default(),
        api: ApiSettings { listen: api_listen, clients, ..ApiSettings::default() },
        limits: LimitSettings::default(),
        connectors: Vec::new(),
        webhooks: Vec::new(),
    }
}

/// The comment above each section of a settings file.
const COMMENTS: &[(&str, &str)] = &[
    (
        "node",
        "# This organisation and its peer endpoint (HTTPS, mutual TLS). For peers on other machines listen on\n# an outside address, e.g. 0.0.0.0:8443.",
    ),
    ("keys", "# Key material. Relative paths are relative to this file."),
    ("storage", "# The embedded SQLite database (relative to this file), or postgres://user@host/db with `schema`."),
    (
        "api",
        "# The local API for the ticket system: plain HTTP, keep it on loopback or behind a TLS proxy. Each client\n# is stored as the SHA-256 of its bearer token, e.g. `printf %s \"$TOKEN\" | sha256sum`.",
    ),
    ("delivery", "# Retries of outgoing messages."),
];

/// One `[key]` section of a settings file, serialised from its typed value (fields in declaration order).
struct Section<'a, T: Serialize + ?Sized>(&'a str, &'a T);

impl<T: Serialize + ?Sized> Serialize for Section<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.0, self.1)?;
        map.end()
    }
}

fn section<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<String> {
    let comment = COMMENTS.iter().find(|(k, _)| *k == key).map(|(_, c)| format!("{c}\n")).unwrap_or_default();
    let text = toml::to_string(&Section(key, value)).with_context(|| format!("cannot serialise [{key}]"))?;
    Ok(format!("\n{comment}{text}"))
}

/// The settings as a commented TOML file, every section written from the typed settings: node, keys, storage,
/// api, delivery, any further section the settings have, and the peers last (with none yet, a commented
/// example block to copy; appended `[[peers]]` blocks join them).
pub fn render_settings(s: &Settings, header: &str) -> Result<String> {
    let mut out = String::new();
    for line in header.lines() {
        out.push_str(if line.is_empty() { "#\n".to_string() } else { format!("# {line}\n") }.as_str());
    }
    out.push_str(&section("node", &s.node)?);
    out.push_str(&section("keys", &s.keys)?);
    out.push_str(&section("storage", &s.storage)?);
    out.push_str(&section("api", &s.api)?);
    out.push_str(&section("delivery", &s.delivery)?);
    // Sections added to the settings later are written too (in name order), so the file stays complete.
    let table = toml::Table::try_from(s).context("cannot serialise the settings")?;
    let known = ["node", "keys", "storage", "api", "delivery", "peers"];
    for (key, value) in table.iter().filter(|(k, _)| !known.contains(&k.as_str())) {
        out.push_str(&section(key, value)?);
    }
    out.push_str(
        "\n# Partners: one [[peers]] block each — their organisation key, the URL of their peer endpoint and their\n\
         # public signing key (the signing.pub.jwk `sdx init` wrote for them).\n",
    );
    if s.peers.is_empty() {
        out.push_str(
            "#\n# [[peers]]\n# org = \"psw:05000007\"\n# url = \"https://partner.example:8443\"\n\
             # signing_key = \"peers/psw-05000007.jwk\"\n",
        );
    } else {
        out.push_str(&toml::to_string(&Section("peers", &s.peers)).context("cannot serialise [[peers]]")?);
    }
    // What was written must read back as the same settings.
    let back: Settings = toml::from_str(&out).context("the settings file does not read back")?;
    anyhow::ensure!(
        toml::Table::try_from(&back)? == table,
        "the settings file does not read back as the same settings"
    );
    Ok(out)
}

/// Write `s` to `path` as [`render_settings`] does; refuses an existing file unless `overwrite`.
pub fn write_settings(path: &Path, s: &Settings, header: &str, overwrite: bool) -> Result<()> {
    write_file(path, render_settings(s, header)?.as_bytes(), false, overwrite)
}

/// Create `path` (0600 if `secret`); an existing file is refused, or replaced if `overwrite`.
pub fn write_file(path: &Path, contents: &[u8], secret: bool, overwrite: bool) -> Result<()> {
    if overwrite && path.symlink_metadata().is_ok() {
        std::fs::remove_file(path).with_context(|| format!("cannot replace {}", path.display()))?;
    }
    Ok(pki::write_new_file(path, contents, secret)?)
}

/// A new API token: `sdx_` and 32 random bytes, base64url. Returns the token and its SHA-256 (hex).
pub fn new_token() -> Result<(String, String)> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("no random numbers from the system"))?;
    let token = format!("sdx_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let hash = sdx_codec::validate::sha256(token.as_bytes()).to_string();
    Ok((token, hash))
}

/// `sdx init --org KEY --out DIR [...]`
pub fn init(opts: InitOptions) -> Result<Outcome> {
    let InitOptions { org, out, name, ca, hosts, ips, listen, api_listen } = opts;
    for h in &hosts {
        pki::check_dns_name(h)?;
    }
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    // Everything is made before anything is written.
    let ca = match &ca {
        Some(dir) => {
            Some(Ca::load_from(dir).with_context(|| format!("cannot load the federation CA in {}", dir.display()))?)
        }
        None => None,
    };
    let signing = PrivateKey::generate(Alg::Es256).context("key generation failed")?;
    let jwk = signing.public_key(Alg::Es256)?;
    let (tls_key, tls_cert, csr) = match &ca {
        Some(ca) => {
            let cert = ca.issue_node_for(&org, &hosts, &ips)?;
            (cert.key_pem().to_string(), Some(cert.cert_pem().to_string()), None)
        }
        None => {
            let req = NodeRequest::generate(&org, &hosts, &ips)?;
            (req.key_pem().to_string(), None, Some(req.csr_pem().to_string()))
        }
    };
    let (token, token_sha256) = new_token()?;
    let storage = StorageSettings { url: DEFAULT_STORAGE.into(), schema: None };
    let client = ApiClient::all_cases(DEFAULT_CLIENT, token_sha256);
    let s = settings(org.clone(), name, listen, api_listen, storage, vec![client]);
    let header = format!(
        "Settings of the SDX node {org}, written by `sdx init`; start it with `sdx serve --config {SETTINGS_FILE}`.\n\
         Every key and its default: docs/node.example.toml. Environment variables SDX_<SECTION>__<KEY> override\n\
         this file (SDX_STORAGE__URL=…). How to add a peer, rotate a token, a certificate or the signing key:\n\
         docs/operations.md."
    );
    let rendered = render_settings(&s, &header)?;

    let created_dir = prepare_dir(&out)?;
    let mut files: Vec<(&str, Vec<u8>, bool)> = vec![
        (SETTINGS_FILE, rendered.into_bytes(), false),
        (SIGNING_KEY_FILE, signing.to_pkcs8_pem().into_bytes(), true),
        (SIGNING_JWK_FILE, format!("{}\n", jwk.to_jwk_string()).into_bytes(), false),
        (pki::NODE_KEY_FILE, tls_key.into_bytes(), true),
    ];
    if let (Some(cert), Some(ca)) = (&tls_cert, &ca) {
        files.push((pki::NODE_CERT_FILE, cert.clone().into_bytes(), false));
        files.push((pki::CA_CERT_FILE, ca.cert_pem().as_bytes().to_vec(), false));
    }
    if let Some(csr) = &csr {
        files.push((pki::NODE_CSR_FILE, csr.clone().into_bytes(), false));
    }
    let mut written = Vec::new();
    for (name, contents, secret) in &files {
        let path = out.join(name);
        if let Err(e) = pki::write_new_file(&path, contents, *secret) {
            for p in &written {
                let _ = std::fs::remove_file(p);
            }
            if created_dir {
                let _ = std::fs::remove_dir(&out);
            }
            return Err(e).with_context(|| format!("sdx init: nothing written to {}", out.display()));
        }
        written.push(path);
    }

    // The token: once, alone on standard output (TOKEN=$(sdx init …) keeps it); everything else on stderr.
    crate::io::stdout(format!("{token}\n").as_bytes())?;
    let d = out.display();
    let names: Vec<String> = hosts.iter().map(|h| h.to_string()).chain(ips.iter().map(IpAddr::to_string)).collect();
    eprintln!("sdx init: node {org} in {d}/");
    eprintln!("  {SETTINGS_FILE:<16} settings: peer endpoint https://{listen}, local API http://{api_listen}/api/v1");
    eprintln!("  {SIGNING_KEY_FILE:<16} signing key (ES256, kid {}); secret, mode 0600", jwk.kid());
    eprintln!("  {SIGNING_JWK_FILE:<16} its public key: give this file to every peer");
    eprintln!("  {:<16} TLS key; secret, mode 0600", pki::NODE_KEY_FILE);
    if tls_cert.is_some() {
        eprintln!("  {:<16} TLS certificate for {} ({})", pki::NODE_CERT_FILE, org, names.join(", "));
        eprintln!("  {:<16} the federation CA's certificate", pki::CA_CERT_FILE);
    } else {
        eprintln!("  {:<16} certificate request: have the federation CA sign it", pki::NODE_CSR_FILE);
        eprintln!(
            "next: the CA runs `sdx pki issue --ca CA --csr {d}/{} --org {org} --host NAME --out {d}`; put the CA's \
             certificate into {d}/{}",
            pki::NODE_CSR_FILE,
            pki::CA_CERT_FILE
        );
    }
    eprintln!(
        "the API token of client `{DEFAULT_CLIENT}` is on standard output: it is not stored (only its SHA-256) and \
         is shown only now"
    );
    Ok(Outcome::Valid)
}

/// Make sure `dir` exists and is empty; returns whether it was created.
fn prepare_dir(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!("{} is not empty: sdx init writes a new node directory and overwrites nothing", dir.display());
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // The node's keys and, later, its database live here: the node's user only.
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            Ok(true)
        }
        Err(e) if dir.exists() && !dir.is_dir() => {
            Err(e).with_context(|| format!("{} is not a directory", dir.display()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}
