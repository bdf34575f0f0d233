//! `sdx pki init`, `sdx pki issue`, `sdx pki request`: a federation CA and node certificates without openssl
//! (`sdx_node::pki`: ECDSA P-256, ECDSA-SHA-256, BSI TR-02102-1). No command overwrites a file.
//!
//! - `pki init --out DIR`: `DIR/ca.crt.pem` (the trust anchor every node gets) and `DIR/ca.key.pem` (0600).
//! - `pki issue --ca DIR --org KEY --host NAME [--ip ADDR] --out DIR`: `DIR/node.crt.pem` and `DIR/node.key.pem`
//!   (0600), the certificate valid for exactly the given DNS names and IP addresses (each option may repeat) and
//!   naming the organisation in its SAN URI `urn:sdx:org:KEY`. With `--csr FILE` instead, the key stays where
//!   the request was made and only `DIR/node.crt.pem` is written; a request that does not verify, has another key
//!   than P-256 or names another organisation is invalid input (exit 1).
//! - `pki request --org KEY [--host NAME] [--ip ADDR] --out DIR`: `DIR/node.key.pem` (0600) and
//!   `DIR/node.csr.pem`, for a CA that runs elsewhere (a new key, e.g. to renew a certificate).
//! - `pki show FILE…`: what each certificate in the files says — subject, organisation, names, validity and the
//!   days left, SHA-256 fingerprint (to compare over a second channel) — on standard output; exit 1 if any has
//!   expired or is not valid yet (for monitoring). Nothing is verified.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sdx_model::OrgKey;
use sdx_node::pki::{self, Ca, CertInfo, NodeRequest, PkiError};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Outcome;

/// SHA-256 fingerprint of a certificate, as `openssl x509 -fingerprint -sha256` shows it (AB:CD:…).
fn fingerprint(der: &[u8]) -> String {
    colon_hex(&pki::cert_sha256(der))
}

fn colon_hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

fn names(hosts: &[String], ips: &[IpAddr]) -> String {
    hosts.iter().cloned().chain(ips.iter().map(IpAddr::to_string)).collect::<Vec<_>>().join(", ")
}

/// `sdx pki init --out DIR [--name NAME]`
pub fn init(out: &Path, name: &str) -> Result<Outcome> {
    let ca = Ca::generate(name).context("cannot make the CA")?;
    ca.write_to(out)?;
    eprintln!(
        "wrote {} (the federation's trust anchor: every node gets a copy) and {} (the CA key: keep it offline, \
         mode 0600)",
        out.join(pki::CA_CERT_FILE).display(),
        out.join(pki::CA_KEY_FILE).display()
    );
    eprintln!("CA \"{name}\", valid 10 years, SHA-256 fingerprint {}", fingerprint(ca.cert_der()));
    Ok(Outcome::Valid)
}

/// Options of `sdx pki issue`.
pub struct IssueOptions {
    /// The CA directory.
    pub ca: PathBuf,
    /// The organisation.
    pub org: OrgKey,
    /// DNS names.
    pub hosts: Vec<String>,
    /// IP addresses.
    pub ips: Vec<IpAddr>,
    /// Sign this request instead of making a key.
    pub csr: Option<PathBuf>,
    /// Where to write.
    pub out: PathBuf,
}

/// `sdx pki issue --ca DIR --org KEY --host NAME [--ip ADDR] [--csr FILE] --out DIR`
pub fn issue(opts: IssueOptions) -> Result<Outcome> {
    let IssueOptions { ca, org, hosts, ips, csr, out } = opts;
    let ca_dir = ca;
    let ca = Ca::load_from(&ca_dir).with_context(|| format!("cannot load the CA in {}", ca_dir.display()))?;
    let host_refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let cert_path = out.join(pki::NODE_CERT_FILE);
    match csr {
        None => {
            let cert = ca.issue_node_for(&org, &host_refs, &ips)?;
            cert.write_to(&out)?;
            eprintln!(
                "wrote {} and {} (the node's TLS key, mode 0600): {org} for {}, valid 2 years, SHA-256 {}",
                cert_path.display(),
                out.join(pki::NODE_KEY_FILE).display(),
                names(&hosts, &ips),
                fingerprint(cert.cert_der())
            );
        }
        Some(csr) => {
            let pem = crate::io::read_key(&csr)?;
            let cert = match ca.sign_request(&pem, &org, &host_refs, &ips) {
                Ok(cert) => cert,
                Err(e @ PkiError::RequestInvalid(_)) => {
                    eprintln!("{}: {e}", csr.display());
                    eprintln!("{}: not signed", csr.display());
                    return Ok(Outcome::Invalid);
                }
                Err(e) => return Err(e.into()),
            };
            std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
            pki::write_new_file(&cert_path, cert.as_bytes(), false)?;
            let der = pki::certs_from_pem(&cert)?.swap_remove(0);
            eprintln!(
                "wrote {}: {org} for {}, valid 2 years, for the key of {}, SHA-256 {}",
                cert_path.display(),
                names(&hosts, &ips),
                csr.display(),
                fingerprint(&der)
            );
        }
    }
    Ok(Outcome::Valid)
}

/// `sdx pki request --org KEY [--host NAME] [--ip ADDR] --out DIR`
pub fn request(org: &OrgKey, hosts: &[String], ips: &[IpAddr], out: &Path) -> Result<Outcome> {
    let host_refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let req = NodeRequest::generate(org, &host_refs, ips)?;
    req.write_to(out)?;
    eprintln!(
        "wrote {} (the new TLS key, mode 0600) and {} (the request for {org}{}): send the request to the federation CA",
        out.join(pki::NODE_KEY_FILE).display(),
        out.join(pki::NODE_CSR_FILE).display(),
        if hosts.is_empty() && ips.is_empty() { String::new() } else { format!(", {}", names(hosts, ips)) }
    );
    Ok(Outcome::Valid)
}

/// `sdx pki show FILE…`
pub fn show(files: &[PathBuf]) -> Result<Outcome> {
    let now = OffsetDateTime::now_utc();
    let at = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_else(|_| t.to_string());
    let mut outcome = Outcome::Valid;
    for file in files {
        let pem = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        let certs = pki::certs_from_pem(&pem).with_context(|| format!("{}", file.display()))?;
        for (i, der) in certs.iter().enumerate() {
            let c = CertInfo::of(der).with_context(|| format!("{} (certificate {})", file.display(), i + 1))?;
            let which =
                if certs.len() > 1 { format!(" (certificate {} of {})", i + 1, certs.len()) } else { String::new() };
            let state = if now < c.not_before {
                outcome = Outcome::Invalid;
                "NOT VALID YET".to_owned()
            } else if now >= c.not_after {
                outcome = Outcome::Invalid;
                "EXPIRED".to_owned()
            } else {
                format!("{} days left", (c.not_after - now).whole_days())
            };
            println!("{}{which}", file.display());
            println!("  subject       {}", c.subject);
            println!("  issuer        {}", c.issuer);
            println!("  CA            {}", if c.is_ca { "yes" } else { "no" });
            println!("  organisation  {}", c.org.as_ref().map_or("-".to_owned(), ToString::to_string));
            println!("  names         {}", if c.names.is_empty() { "-".to_owned() } else { c.names.join(", ") });
            println!("  valid         {} to {} ({state})", at(c.not_before), at(c.not_after));
            println!("  SHA-256       {}", colon_hex(&c.sha256));
        }
    }
    Ok(outcome)
}
