//! The ticket systems the project's scripts start on this machine (`scripts/ticketsystems/<kind>-start.sh`, for
//! tests, the demo and the benchmarks): where they keep their state, and the env file each writes to say how to
//! reach it.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the scripts keep state and env files: `SDX_TS_DIR`, default `/var/tmp/sdx-ts`.
pub fn ts_dir() -> PathBuf {
    std::env::var_os("SDX_TS_DIR").map_or_else(|| PathBuf::from("/var/tmp/sdx-ts"), PathBuf::from)
}

/// The `KEY=VALUE` lines of `<ts_dir>/<kind>.env` (quotes around values and `export ` are allowed).
pub fn read_env(kind: &str) -> std::io::Result<BTreeMap<String, String>> {
    let path = ts_dir().join(format!("{kind}.env"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Ok(text
        .lines()
        .map(|l| l.trim().trim_start_matches("export ").trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches(|c| c == '"' || c == '\'').to_string()))
        .collect())
}
