//! Real ticket systems for the tests: started (or reused) by the project's scripts in `scripts/ticketsystems/`.
//!
//! `scripts/ticketsystems/<kind>-start.sh` is idempotent and safe to call from several test processes at once
//! (it takes a lock); it writes `<SDX_TS_DIR>/<kind>.env` (default `/var/tmp/sdx-ts`) with `KEY=VALUE` lines
//! that say how to reach the system.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

static STARTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Start `kind` (`otobo`, `rt`, `redmine`) unless this process did already, and return its env file's values.
/// Panics with the script's output when it fails: a test that needs a system fails without it.
pub fn system(kind: &str) -> BTreeMap<String, String> {
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    if !started.iter().any(|k| k == kind) {
        run_script(&format!("{kind}-start.sh"));
        started.push(kind.to_string());
    }
    read_env(kind)
}

/// Run `scripts/ticketsystems/<name>`; panics with its output when it fails.
pub fn run_script(name: &str) {
    let script = repo().join("scripts/ticketsystems").join(name);
    let out = Command::new("bash").arg(&script).output().unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The values of `<SDX_TS_DIR>/<kind>.env`.
pub fn read_env(kind: &str) -> BTreeMap<String, String> {
    sdx_connectors::scripts::read_env(kind).unwrap_or_else(|e| panic!("{e}"))
}

/// A title no other test run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix} {}", uuid::Uuid::now_v7())
}
