//! `sdx demo` end to end: two nodes on loopback with mutual TLS run use cases 2.1 and 2.2 and agree — on the
//! embedded default (SQLite) and on PostgreSQL (the server `scripts/test.sh` starts; its URL comes in
//! `SDX_TEST_DATABASE_URL`).

use std::process::Command;

fn demo(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sdx")).arg("demo").args(args).output().expect("sdx demo runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn demo_on_sqlite_keeps_its_databases_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = demo(&["--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("both sides agree"), "{out}");
    assert!(out.contains("receiptReceived"), "{out}");
    assert!(dir.path().join("mila.db").is_file() && dir.path().join("bela.db").is_file());
    // A second run on the same databases works too (new case, same nodes).
    let (code, out) = demo(&["--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn demo_on_postgresql() {
    let url = std::env::var("SDX_TEST_DATABASE_URL")
        .expect("SDX_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh, which starts PostgreSQL");
    let (code, out) = demo(&["--database-url", &url]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("PostgreSQL, one schema per node") && out.contains("both sides agree"), "{out}");
}
