//! The CLI contract, run against the real `sdx` binary: commands, outputs and exit codes (0 valid,
//! 1 invalid, 2 usage or I/O).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn sdx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sdx")).args(args).stdin(Stdio::null()).output().expect("sdx runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn write(dir: &Path, name: &str, content: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.to_str().unwrap().to_string()
}

fn sample_json() -> String {
    sdx_codec::json::encode(&sdx_model::sample::typical_forward())
}

#[test]
fn validate_reports_exit_codes_and_locations() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.json", sample_json().as_bytes());
    let o = sdx(&["validate", &good]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let bad = write(
        dir.path(),
        "bad.json",
        sample_json().replace("\"priority\": \"high\"", "\"priority\": \"low\"").as_bytes(),
    );
    let o = sdx(&["validate", &good, &bad]);
    assert_eq!(code(&o), 1);
    let e = stderr(&o);
    assert!(e.contains("error[priorityMismatch]") && e.contains("/body/forward/case/priority"), "{e}");
    assert!(e.contains("bad.json:"), "{e}");
    let o = sdx(&["validate", dir.path().join("missing.json").to_str().unwrap()]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert_eq!(code(&sdx(&["validate"])), 2);
    assert_eq!(code(&sdx(&["frobnicate"])), 2);
}

#[test]
fn every_example_validates_and_every_invalid_example_fails() {
    let mut valid: Vec<String> = Vec::new();
    for e in std::fs::read_dir(examples()).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() && matches!(p.extension().and_then(|x| x.to_str()), Some("json" | "xml")) {
            valid.push(p.to_str().unwrap().into());
        }
    }
    assert!(valid.len() >= 24, "at least 12 documents in JSON and XML, found {}", valid.len());
    let args: Vec<&str> = std::iter::once("validate").chain(valid.iter().map(String::as_str)).collect();
    let o = sdx(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    for e in std::fs::read_dir(examples().join("invalid")).unwrap() {
        let p = e.unwrap().path();
        if !matches!(p.extension().and_then(|x| x.to_str()), Some("json" | "xml")) {
            continue;
        }
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let expected = name.split(['-', '.']).next().unwrap();
        let o = sdx(&["validate", p.to_str().unwrap()]);
        assert_eq!(code(&o), 1, "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(&format!("error[{expected}]")), "{name} should give {expected}: {}", stderr(&o));
    }
}

#[test]
fn convert_round_trips_between_json_and_xml() {
    let dir = tempfile::tempdir().unwrap();
    let json = write(dir.path(), "a.json", sample_json().as_bytes());
    let o = sdx(&["convert", "--to", "xml", &json]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(o.stdout.starts_with(b"<?xml"));
    let xml = write(dir.path(), "a.xml", &o.stdout);
    let back = sdx(&["convert", "--to", "json", &xml]);
    assert_eq!(code(&back), 0);
    assert_eq!(String::from_utf8(back.stdout).unwrap(), sample_json());
    let xml_again = sdx(&["convert", "--to", "xml", &write(dir.path(), "b.json", sample_json().as_bytes())]);
    assert_eq!(xml_again.stdout, std::fs::read(&xml).unwrap());
    assert_eq!(code(&sdx(&["convert", "--to", "yaml", &json])), 2);
}

#[test]
fn schema_writes_the_promised_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("schemas");
    let o = sdx(&["schema", "--out", out.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(out.join("sdx.schema.json").is_file());
    assert!(out.join("sdx.xsd").is_file());
    assert!(out.join("codelists/status.xml").is_file());
    let n = std::fs::read_dir(out.join("codelists")).unwrap().count();
    assert_eq!(n, sdx_model::codelist::ALL.len());
}

#[test]
fn sign_verify_encrypt_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let doc = write(d, "doc.json", sample_json().as_bytes());
    let (es, enc) = (d.join("es"), d.join("enc"));
    assert_eq!(code(&sdx(&["keys", "generate", "--alg", "ES256", "--out", es.to_str().unwrap()])), 0);
    assert_eq!(code(&sdx(&["keys", "generate", "--alg", "RSA-OAEP-256", "--out", enc.to_str().unwrap()])), 0);
    // Safe default: never overwrite a private key silently.
    assert_eq!(code(&sdx(&["keys", "generate", "--alg", "ES256", "--out", es.to_str().unwrap()])), 2);
    assert_eq!(code(&sdx(&["keys", "generate", "--alg", "HS256", "--out", d.join("x").to_str().unwrap()])), 2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(es.join("private.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "private key readable by others");
    }
    let (es_priv, es_pub) = (es.join("private.pem"), es.join("public.jwk"));
    let o = sdx(&["sign", "--key", es_priv.to_str().unwrap(), &doc]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let jws_text = String::from_utf8(o.stdout).unwrap();
    let jws = write(d, "doc.jws", jws_text.as_bytes());
    let o = sdx(&["verify", "--key", es_pub.to_str().unwrap(), &jws]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // The same document signed from its XML form gives the same payload (canonical form).
    let xml = sdx(&["convert", "--to", "xml", &doc]).stdout;
    let xml_path = write(d, "doc.xml", &xml);
    let o = sdx(&["sign", "--key", es_priv.to_str().unwrap(), &xml_path]);
    let payload = |s: &str| s.split('.').nth(1).map(str::to_string);
    assert_eq!(payload(&String::from_utf8(o.stdout).unwrap()), payload(&jws_text));
    // Tampering with the payload or using another key fails with exit 1.
    let mut parts: Vec<String> = jws_text.trim().split('.').map(str::to_string).collect();
    parts[1] = parts[1].replacen('e', "f", 1);
    let forged = write(d, "forged.jws", parts.join(".").as_bytes());
    assert_eq!(code(&sdx(&["verify", "--key", es_pub.to_str().unwrap(), &forged])), 1);
    let other = d.join("other");
    sdx(&["keys", "generate", "--alg", "ES256", "--out", other.to_str().unwrap()]);
    assert_eq!(code(&sdx(&["verify", "--key", other.join("public.jwk").to_str().unwrap(), &jws])), 1);
    assert_eq!(code(&sdx(&["verify", "--key", es_pub.to_str().unwrap(), &doc])), 1);
    // Sign an invalid document: refused with exit 1.
    let bad = write(d, "bad.json", b"{\"header\": {}}");
    assert_eq!(code(&sdx(&["sign", "--key", es_priv.to_str().unwrap(), &bad])), 1);
    // Encrypt the JWS to the recipient and decrypt it again.
    let o = sdx(&["encrypt", "--to", enc.join("public.jwk").to_str().unwrap(), &jws]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let jwe = write(d, "doc.jwe", &o.stdout);
    let o = sdx(&["decrypt", "--key", enc.join("private.pem").to_str().unwrap(), &jwe]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(String::from_utf8(o.stdout).unwrap(), jws_text);
    // Wrong key or tampered JWE: exit 1.
    let other_enc = d.join("other-enc");
    sdx(&["keys", "generate", "--alg", "RSA-OAEP-256", "--out", other_enc.to_str().unwrap()]);
    assert_eq!(code(&sdx(&["decrypt", "--key", other_enc.join("private.pem").to_str().unwrap(), &jwe])), 1);
    assert_eq!(code(&sdx(&["decrypt", "--key", enc.join("private.pem").to_str().unwrap(), &doc])), 1);
    // PS512 (FIT-Connect profile) signs and verifies the same way.
    let ps = d.join("ps");
    assert_eq!(code(&sdx(&["keys", "generate", "--alg", "PS512", "--out", ps.to_str().unwrap()])), 0);
    let o = sdx(&["sign", "--key", ps.join("private.pem").to_str().unwrap(), &doc]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let ps_jws = write(d, "doc.ps512.jws", &o.stdout);
    let o = sdx(&["verify", "--key", ps.join("public.jwk").to_str().unwrap(), &ps_jws]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("PS512"), "{}", stderr(&o));
    assert_eq!(code(&sdx(&["verify", "--key", es_pub.to_str().unwrap(), &ps_jws])), 1);
    // Encrypting to a signature key is a usage error.
    assert_eq!(code(&sdx(&["encrypt", "--to", es_pub.to_str().unwrap(), &doc])), 2);
}

#[test]
fn hostile_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("trunc.json", sample_json().as_bytes()[..300].to_vec(), "malformed"),
        ("deep.json", "[".repeat(100_000).into_bytes(), "error["),
        ("utf8.json", b"{\"header\": \"\xff\xfe\"}".to_vec(), "malformed"),
        (
            "xxe.xml",
            b"<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>".to_vec(),
            "forbiddenXml",
        ),
        (
            "lol.xml",
            b"<!DOCTYPE l [<!ENTITY a \"aaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]><l>&b;</l>".to_vec(),
            "forbiddenXml",
        ),
        ("root.xml", b"<html/>".to_vec(), "wrongRoot"),
        ("empty.json", Vec::new(), "malformed"),
        ("big.json", vec![b' '; sdx_model::rules::limits::MAX_DOCUMENT_BYTES + 10], "tooLarge"),
    ];
    for (name, bytes, expect) in cases {
        let p = write(d, name, &bytes);
        let o = sdx(&["validate", &p]);
        assert_eq!(code(&o), 1, "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(expect), "{name}: {}", stderr(&o));
        assert!(!stderr(&o).contains("root:x:0:0"), "{name} leaked a local file");
    }
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every file in `dir` with its contents, to show that a refused command changed nothing.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn pki_makes_a_ca_and_node_certificates_and_overwrites_nothing() {
    use sdx_node::pki::{Ca, NodeCert};
    let dir = tempfile::tempdir().unwrap();
    let p = |s: &str| dir.path().join(s).to_str().unwrap().to_string();

    let o = sdx(&["pki", "init", "--out", &p("ca")]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("SHA-256 fingerprint"), "{}", stderr(&o));
    let ca = Ca::load_from(dir.path().join("ca")).unwrap();
    #[cfg(unix)]
    assert_eq!((mode(&dir.path().join("ca/ca.key.pem")), mode(&dir.path().join("ca/ca.crt.pem"))), (0o600, 0o644));
    let before = snapshot(&dir.path().join("ca"));
    let o = sdx(&["pki", "init", "--out", &p("ca")]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("pkiFileExists") && stderr(&o).contains("ca.crt.pem"), "{}", stderr(&o));
    assert_eq!(snapshot(&dir.path().join("ca")), before, "the CA is unchanged");

    // A node certificate with its key.
    let ca_dir = p("ca");
    let issue = |out: &str, extra: &[&str]| {
        let mut args = vec!["pki", "issue", "--ca", &ca_dir, "--org", "psw:01000115"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", out]);
        sdx(&args)
    };
    let o = issue(&p("node"), &["--host", "mila.example", "--host", "localhost", "--ip", "127.0.0.1"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let node = NodeCert::load_from(dir.path().join("node")).unwrap();
    assert_eq!(node.org().unwrap().as_str(), "psw:01000115");
    assert!(sdx_node::tls::server_config(&node, ca.cert_pem()).is_ok(), "key and certificate belong together");
    #[cfg(unix)]
    assert_eq!(mode(&dir.path().join("node/node.key.pem")), 0o600);
    let before = snapshot(&dir.path().join("node"));
    assert_eq!(code(&issue(&p("node"), &["--host", "mila.example"])), 2, "never overwritten");
    assert_eq!(snapshot(&dir.path().join("node")), before);

    // Usage errors: no --host, a bad host name, a bad organisation key, an IP given as host, a missing CA.
    assert_eq!(code(&issue(&p("x"), &[])), 2);
    for host in ["*.example", "bad_name.example", "127.0.0.1"] {
        let o = issue(&p("x"), &["--host", host]);
        assert_eq!(code(&o), 2, "{host}");
        assert!(stderr(&o).contains("certificateNameInvalid"), "{}", stderr(&o));
    }
    assert_eq!(
        code(&sdx(&["pki", "issue", "--ca", &p("ca"), "--org", "kein key", "--host", "a", "--out", &p("x")])),
        2
    );
    assert_eq!(code(&sdx(&["pki", "issue", "--ca", &p("nope"), "--org", "psw:1", "--host", "a", "--out", &p("x")])), 2);
    assert!(!dir.path().join("x").exists(), "nothing written by a refused command");

    // A request made elsewhere: only the certificate is written, for the request's key.
    let o = sdx(&["pki", "request", "--org", "psw:06000042", "--host", "bela.example", "--out", &p("bela")]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    #[cfg(unix)]
    assert_eq!(mode(&dir.path().join("bela/node.key.pem")), 0o600);
    let csr = p("bela/node.csr.pem");
    let sign = |org: &str, csr: &str| {
        sdx(&[
            "pki",
            "issue",
            "--ca",
            &p("ca"),
            "--org",
            org,
            "--host",
            "bela.example",
            "--csr",
            csr,
            "--out",
            &p("bela"),
        ])
    };
    // Filed under the wrong organisation, or not a request at all: invalid input, nothing written.
    let o = sign("psw:01000115", &csr);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("certificateRequestInvalid") && stderr(&o).contains("psw:06000042"), "{}", stderr(&o));
    assert_eq!(code(&sign("psw:06000042", &p("ca/ca.crt.pem"))), 1);
    assert!(!dir.path().join("bela/node.crt.pem").exists());
    let o = sign("psw:06000042", &csr);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let bela = NodeCert::load_from(dir.path().join("bela")).unwrap();
    assert_eq!(bela.org().unwrap().as_str(), "psw:06000042");
    assert!(sdx_node::tls::server_config(&bela, ca.cert_pem()).is_ok(), "the certificate is for the request's key");
    assert_eq!(code(&sign("psw:06000042", &csr)), 2, "an existing certificate is not overwritten");
}

#[test]
fn init_writes_a_complete_node_directory_and_prints_the_token_once() {
    use sdx_node::pki::NodeCert;
    use sdx_node::settings::Settings;
    let dir = tempfile::tempdir().unwrap();
    let p = |s: &str| dir.path().join(s).to_str().unwrap().to_string();
    assert_eq!(code(&sdx(&["pki", "init", "--out", &p("ca")])), 0);

    let o = sdx(&["init", "--org", "psw:01000115", "--out", &p("mila"), "--ca", &p("ca"), "--host", "localhost"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let stdout = String::from_utf8(o.stdout.clone()).unwrap();
    let token = stdout.trim_end_matches('\n');
    assert!(!token.contains('\n') && token.starts_with("sdx_") && token.len() >= 40, "one line, the token: {stdout:?}");
    assert!(!stderr(&o).contains(token), "printed once");
    let d = dir.path().join("mila");
    let mut names: Vec<String> =
        std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(
        names,
        ["ca.crt.pem", "node.crt.pem", "node.key.pem", "node.toml", "signing.key.pem", "signing.pub.jwk"]
    );
    #[cfg(unix)]
    for (f, m) in
        [("signing.key.pem", 0o600), ("node.key.pem", 0o600), ("node.toml", 0o644), ("signing.pub.jwk", 0o644)]
    {
        assert_eq!(mode(&d.join(f)), m, "{f}");
    }

    // The settings load as they are, with paths from the file's directory and safe defaults.
    let toml = std::fs::read_to_string(d.join("node.toml")).unwrap();
    assert!(!toml.contains(token), "the token itself is not stored");
    let s = Settings::load(Some(&d.join("node.toml"))).unwrap();
    assert_eq!(s.node.org.as_str(), "psw:01000115");
    assert!(s.node.listen.ip().is_loopback() && s.api.listen.ip().is_loopback());
    assert_eq!(s.storage.url, format!("sqlite://{}/node.db?mode=rwc", d.display()));
    assert_eq!(s.keys.signing_key, d.join("signing.key.pem"));
    assert!(s.peers.is_empty());
    assert_eq!(s.api.clients.len(), 1);
    assert_eq!(s.api.clients[0].token_sha256, sdx_codec::validate::sha256(token.as_bytes()).to_string());
    // The keys are what they say: an ES256 signing key whose public half is the JWK, a TLS certificate for the org.
    let key =
        sdx_crypto::PrivateKey::from_pkcs8_pem(&std::fs::read_to_string(d.join("signing.key.pem")).unwrap()).unwrap();
    assert_eq!(key.signing_alg(), sdx_crypto::Alg::Es256);
    let jwk = sdx_crypto::PublicKey::from_jwk(&std::fs::read_to_string(d.join("signing.pub.jwk")).unwrap()).unwrap();
    assert_eq!(jwk.kid(), key.public_key(sdx_crypto::Alg::Es256).unwrap().kid());
    assert_eq!(NodeCert::load_from(&d).unwrap().org().unwrap().as_str(), "psw:01000115");
    assert_eq!(std::fs::read(d.join("ca.crt.pem")).unwrap(), std::fs::read(dir.path().join("ca/ca.crt.pem")).unwrap());

    // A non-empty directory is refused and left as it was; so is --ca without --host.
    let before = snapshot(&d);
    let o = sdx(&["init", "--org", "psw:01000115", "--out", &p("mila")]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "no token for a refused directory");
    assert_eq!(snapshot(&d), before);
    assert_eq!(code(&sdx(&["init", "--org", "psw:01000115", "--out", &p("x"), "--ca", &p("ca")])), 2);
    assert!(!dir.path().join("x").exists());

    // Without --ca: a certificate request instead of a certificate; an empty directory is fine.
    std::fs::create_dir(dir.path().join("bela")).unwrap();
    let o = sdx(&["init", "--org", "psw:06000042", "--out", &p("bela"), "--listen", "0.0.0.0:9443"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let b = dir.path().join("bela");
    assert!(b.join("node.csr.pem").is_file() && b.join("node.key.pem").is_file());
    assert!(!b.join("node.crt.pem").exists() && !b.join("ca.crt.pem").exists());
    assert!(stderr(&o).contains("sdx pki issue"), "says what to do next: {}", stderr(&o));
    let o = sdx(&[
        "pki",
        "issue",
        "--ca",
        &p("ca"),
        "--csr",
        &p("bela/node.csr.pem"),
        "--org",
        "psw:06000042",
        "--host",
        "bela.example",
        "--out",
        &p("bela"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(NodeCert::load_from(&b).unwrap().org().unwrap().as_str(), "psw:06000042");
}
