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
