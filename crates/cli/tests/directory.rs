//! `sdx directory …` against the real binary: sign → verify, every refusal with exit 1 and its code, resolution
//! with its explanation, diff, schema; usage and I/O errors with exit 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn sdx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sdx")).args(args).stdin(Stdio::null()).output().expect("sdx runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// The example directory with `version`, valid from `from_h` to `to_h` hours from now.
fn directory(version: u64, from_h: i64, to_h: i64) -> Value {
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(root().join("docs/examples/directory.json")).unwrap()).unwrap();
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    v["version"] = json!(version);
    v["issuedAt"] = json!(rfc3339(now + time::Duration::hours(from_h)));
    v["expiresAt"] = json!(rfc3339(now + time::Duration::hours(to_h)));
    v
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let env = Env { dir: tempfile::tempdir().unwrap() };
        for name in ["authority", "other"] {
            let o = sdx(&["keys", "generate", "--alg", "ES256", "--out", &env.path(name)]);
            assert_eq!(code(&o), 0, "{}", stderr(&o));
        }
        env
    }
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }
    fn write(&self, name: &str, content: &[u8]) -> String {
        std::fs::write(self.dir.path().join(name), content).unwrap();
        self.path(name)
    }
    fn key(&self) -> String {
        self.path("authority/private.pem")
    }
    fn public(&self) -> String {
        self.path("authority/public.jwk")
    }
    /// Sign `doc` into `name`; returns its path.
    fn signed(&self, name: &str, doc: &Value) -> String {
        let input = self.write(&format!("{name}.json"), doc.to_string().as_bytes());
        let out = self.path(name);
        let o = sdx(&["directory", "sign", "--key", &self.key(), "--in", &input, "--out", &out]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        out
    }
}

#[test]
fn sign_then_verify_and_every_refusal() {
    let env = Env::new();
    let v1 = env.signed("v1.jws", &directory(1, -24, 24 * 30));
    let o = sdx(&["directory", "verify", "--authority", &env.public(), &v1]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("valid: directory version 1 of dir:fitko"), "{}", stderr(&o));
    assert!(stderr(&o).contains("7 organisations"), "{}", stderr(&o));

    // One byte of the payload changed: the signature fails, exit 1, with the code.
    let mut text = std::fs::read_to_string(&v1).unwrap();
    let dot = text.find('.').unwrap();
    let at = dot + 20;
    let replacement = if &text[at..=at] == "A" { "B" } else { "A" };
    text.replace_range(at..=at, replacement);
    let tampered = env.write("tampered.jws", text.as_bytes());
    let o = sdx(&["directory", "verify", "--authority", &env.public(), &tampered]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("error[signatureInvalid]"), "{}", stderr(&o));

    // Another authority's key.
    let o = sdx(&["directory", "verify", "--authority", &env.path("other/public.jwk"), &v1]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("error[unknownAuthority]"), "{}", stderr(&o));
    // Both keys trusted (a rollover): valid.
    let o =
        sdx(&["directory", "verify", "--authority", &env.path("other/public.jwk"), "--authority", &env.public(), &v1]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // Expired: signing warns, verifying refuses.
    let input = env.write("old.json", directory(2, -48, -1).to_string().as_bytes());
    let expired = env.path("expired.jws");
    let o = sdx(&["directory", "sign", "--key", &env.key(), "--in", &input, "--out", &expired]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: the directory has already expired"), "{}", stderr(&o));
    let o = sdx(&["directory", "verify", "--authority", &env.public(), &expired]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("error[expired]"), "{}", stderr(&o));

    // Not yet valid.
    let future = env.signed("future.jws", &directory(3, 24, 48));
    let o = sdx(&["directory", "verify", "--authority", &env.public(), &future]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("error[notYetValid]"), "{}", stderr(&o));

    // Older than the version held.
    let o = sdx(&["directory", "verify", "--authority", &env.public(), "--not-older-than", "2", &v1]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("error[olderVersion]") && stderr(&o).contains("version 1"), "{}", stderr(&o));
    let o = sdx(&["directory", "verify", "--authority", &env.public(), "--not-older-than", "1", &v1]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // Unsigned.
    let unsigned = env.write("plain.json", directory(1, -1, 1).to_string().as_bytes());
    let o = sdx(&["directory", "verify", "--authority", &env.public(), &unsigned]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("error[unsigned]"), "{}", stderr(&o));

    // An invalid document is not signed (exit 1), with the pointer.
    let mut bad = directory(1, -1, 1);
    bad["responsibilities"][0]["organisation"] = json!("psw:99999999");
    let input = env.write("bad.json", bad.to_string().as_bytes());
    let o = sdx(&["directory", "sign", "--key", &env.key(), "--in", &input, "--out", &env.path("bad.jws")]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("error[unknownOrganisation]"), "{}", stderr(&o));
    assert!(stderr(&o).contains("/responsibilities/0/organisation"), "{}", stderr(&o));
    assert!(!Path::new(&env.path("bad.jws")).exists());

    // Usage and I/O: exit 2.
    assert_eq!(code(&sdx(&["directory", "verify", "--authority", &env.public(), &env.path("missing.jws")])), 2);
    assert_eq!(code(&sdx(&["directory", "verify", &v1])), 2, "--authority is required");
    assert_eq!(code(&sdx(&["directory", "verify", "--authority", &env.key(), &v1])), 2, "a private key is no JWK");
}

#[test]
fn resolve_picks_the_most_specific_region_and_explains() {
    let env = Env::new();
    let signed = env.signed("d.jws", &directory(1, -1, 24));
    let args = |service: &str, region: &str| {
        vec![
            "directory".to_owned(),
            "resolve".into(),
            "--directory".into(),
            signed.clone(),
            "--authority".into(),
            env.public(),
            "--service".into(),
            service.into(),
            "--region".into(),
            region.into(),
        ]
    };
    let run = |a: Vec<String>| sdx(&a.iter().map(String::as_str).collect::<Vec<_>>());

    let o = run(args("99107004017000", "010030000000"));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("psw:01003110\tHansestadt Lübeck"), "{out}");
    assert!(out.contains("endpoint: https://hub.sdx.dataport.example/sdx/v1 (via hub hub:dataport)"), "{out}");
    assert!(out.contains("matched prefix 01003 (Kreis) → psw:01003110"), "{out}");
    assert!(out.contains("also considered: 01 (Land) → psw:01000002"), "{out}");
    assert!(out.contains("also considered: nationwide → psw:06000042"), "{out}");
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));

    // Levels; another Land falls back to the nationwide entry.
    let mut a = args("99107004017000", "010030000000");
    a.extend(["--level".into(), "1".into()]);
    assert!(stdout(&run(a)).starts_with("psw:01000115\t"));
    assert!(stdout(&run(args("99107004017000", "064120000000"))).starts_with("psw:06000042\t"));

    // JSON, with the candidates in order.
    let mut a = args("99036004000000", "01060");
    a.push("--json".into());
    let o = run(a);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["responsible"]["organisation"], "psw:01000002");
    assert_eq!(v["responsible"]["regionLevel"], "land");
    assert_eq!(v["alternatives"][0]["organisation"], "psw:06000042");
    assert_eq!(v["alternatives"][0]["rank"], 1);
    assert_eq!(v["verified"], true);
    assert_eq!(v["directoryVersion"], 1);
    assert_eq!(v["service"]["leikaKey"], "99036004000000");

    // Unknown service and nobody at that level: exit 1 with a clear message.
    let o = run(args("99999999999999", "010030000000"));
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("error[unknownService]: no organisation is responsible for service LeiKa 99999999999999"),
        "{}",
        stderr(&o)
    );
    let mut a = args("99036004000000", "010030000000");
    a.extend(["--level".into(), "thirdLevel".into()]);
    let o = run(a);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("error[noResponsibility]"), "{}", stderr(&o));

    // Bad arguments are usage errors.
    assert_eq!(code(&run(args("99107004017000", "0100"))), 2);
    assert_eq!(code(&run(args("has space", "01003"))), 2);
    let mut a = args("99107004017000", "01003");
    a.extend(["--level".into(), "fourth".into()]);
    assert_eq!(code(&run(a)), 2);

    // Without --authority an unsigned draft can be asked, with a warning; with it, it is refused.
    let draft = env.write("draft.json", directory(1, -1, 1).to_string().as_bytes());
    let o = sdx(&["directory", "resolve", "--directory", &draft, "--service", "ozg:OZG-1104", "--region", "01003"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).starts_with("psw:06000042\t"), "{}", stdout(&o));
    assert!(stderr(&o).contains("warning: signature and validity not checked"), "{}", stderr(&o));
    let o = sdx(&[
        "directory",
        "resolve",
        "--directory",
        &draft,
        "--authority",
        &env.public(),
        "--service",
        "OZG-1104",
        "--region",
        "01003",
    ]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("error[unsigned]"), "{}", stderr(&o));
}

#[test]
fn diff_and_schema() {
    let env = Env::new();
    let old = env.signed("old.jws", &directory(1, -1, 24));
    let mut next = directory(2, -1, 48);
    next["organisations"][4]["capabilities"]["maxAttachmentBytes"] = json!(1_048_576);
    next["responsibilities"].as_array_mut().unwrap().remove(4);
    let new = env.write("new.json", next.to_string().as_bytes());
    let o = sdx(&["directory", "diff", &old, &new]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("directory version 1 → 2"), "{out}");
    assert!(out.contains("~ organisation psw:01060002"), "{out}");
    assert!(out.contains("capabilities.maxAttachmentBytes: 10485760 → 1048576"), "{out}");
    assert!(out.contains("- LeiKa 99107004017000 in 01060 (Kreis) at secondLevel → psw:01060002"), "{out}");
    let o = sdx(&["directory", "diff", "--json", &old, &new]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["toVersion"], 2);
    assert_eq!(v["responsibilitiesRemoved"][0]["organisation"], "psw:01060002");
    assert_eq!(code(&sdx(&["directory", "diff", &old, &env.path("nope.json")])), 2);

    let o = sdx(&["directory", "schema"]);
    assert_eq!(code(&o), 0);
    let committed = std::fs::read_to_string(root().join("docs/schemas/directory.schema.json")).unwrap();
    assert_eq!(stdout(&o), committed);
}
