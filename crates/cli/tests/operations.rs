//! `docs/operations.md` is true: its ```sh blocks, in order, run as one bash script against the real `sdx` binary
//! (free ports in place of the page's 8443/8080/9443/9080, an empty HOME, real `curl`, real processes, real TLS)
//! and end with the same case in both nodes' databases — forwarded, worked on, the API token, BeLa's certificate
//! and MiLa's signing key rotated on the way. And what the page promises about a second `sdx serve` on the same
//! database: refused with exit 2, naming the file; a node killed with SIGKILL starts again.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sdx_model::{CaseId, Status};
use sdx_store::{SqliteStore, Store};

const DOC: &str = include_str!("../../../docs/operations.md");
/// The case the page forwards.
const CASE: &str = "5c1f0a3e-8d2b-4f6a-9c7e-2b4d6f8a0c13";

/// The fenced blocks of a Markdown text: (info string, body).
fn fenced_blocks(md: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in md.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_string(), String::new())),
            (Some(_), Some("")) => blocks.push(open.take().unwrap()),
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "an unclosed code block in docs/operations.md");
    blocks
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn sdx_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_sdx")).parent().unwrap().to_path_buf()
}

fn require_curl() {
    let found = Command::new("sh").args(["-c", "command -v curl"]).output().is_ok_and(|o| o.status.success());
    assert!(found, "curl is missing: docs/operations.md uses it (scripts/test.sh installs it: apt-get install curl)");
}

/// Run `script` with bash in `home` (also its HOME) with `sdx` on the PATH; kill its process group after
/// `limit`. Returns (exit code, stdout, stderr).
fn run_bash(script: &str, home: &Path, limit: Duration) -> (Option<i32>, String, String) {
    use std::os::unix::process::CommandExt;
    let path = format!("{}:{}", sdx_dir().display(), std::env::var("PATH").unwrap_or_default());
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(home)
        .env("HOME", home)
        .env("PATH", path)
        .env_remove("SDX_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("bash runs");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > limit {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Whatever is left of the group (nodes of a failed run) goes too.
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
    let _ = child.wait();
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    match status {
        Some(s) => (s.code(), out, err),
        None => (None, out, format!("{err}\n[killed after {limit:?}]")),
    }
}

fn read(home: &Path, file: &str) -> String {
    std::fs::read_to_string(home.join(file)).unwrap_or_else(|e| format!("<{file}: {e}>"))
}

#[test]
fn the_operations_walkthrough_runs_as_written() {
    require_curl();
    let blocks = fenced_blocks(DOC);
    for (info, _) in &blocks {
        assert!(
            !info.starts_with("sh") || info == "sh" || info == "sh untested",
            "```{info}: a shell block is either run (```sh) or marked ```sh untested"
        );
    }
    let run: Vec<&str> = blocks.iter().filter(|(info, _)| info == "sh").map(|(_, body)| body.as_str()).collect();
    assert!(run.len() >= 12, "only {} runnable blocks", run.len());
    let mut script = run.join("\n");
    for (port, what) in
        [("8443", "MiLa's peer port"), ("8080", "MiLa's API"), ("9443", "BeLa's peer port"), ("9080", "BeLa's API")]
    {
        let pattern = format!(":{port}");
        assert!(script.contains(&pattern), "the page no longer uses {port} for {what}");
        script = script.replace(&pattern, &format!(":{}", free_port()));
    }
    let home = tempfile::tempdir().unwrap();
    let script = format!("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}");
    let (code, out, err) = run_bash(&script, home.path(), Duration::from_secs(300));
    let dir = home.path().join("sdx-tutorial");
    let logs = format!(
        "exit {code:?}\n--- stdout\n{out}\n--- stderr\n{err}\n--- mila/serve.log\n{}\n--- bela/serve.log\n{}",
        read(&dir, "mila/serve.log"),
        read(&dir, "bela/serve.log")
    );
    assert_eq!(code, Some(0), "{logs}");

    // What the page shows as output is what came out: every ```text block, its lines in a row, in page order. A line
    // of JSON matches the same JSON value: the order of an object's members is not part of what it says (and
    // depends on serde_json's `preserve_order` feature, which some builds of the workspace switch on).
    let same = |shown: &str, printed: &str| {
        shown == printed
            || matches!(
                (serde_json::from_str::<serde_json::Value>(shown), serde_json::from_str::<serde_json::Value>(printed)),
                (Ok(a), Ok(b)) if a.is_object() && a == b
            )
    };
    let lines: Vec<&str> = out.lines().collect();
    let mut from = 0;
    let shown: Vec<&str> = blocks.iter().filter(|(info, _)| info == "text").map(|(_, b)| b.as_str()).collect();
    assert!(shown.len() >= 4, "{shown:?}");
    for block in shown {
        let want: Vec<&str> = block.lines().collect();
        let at = (from..lines.len().saturating_sub(want.len() - 1))
            .find(|&i| lines[i..i + want.len()].iter().zip(&want).all(|(printed, shown)| same(shown, printed)))
            .unwrap_or_else(|| panic!("the page shows\n{block}but the commands printed otherwise\n{logs}"));
        from = at + want.len();
    }

    // The rotations happened.
    let file = |f: &str| std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}\n{logs}"));
    assert_ne!(file("bela/node.crt.pem"), file("bela/retired/node.crt.pem"), "BeLa's certificate was renewed");
    assert_ne!(file("bela/node.key.pem"), file("bela/retired/node.key.pem"), "with a new key");
    assert_ne!(file("mila/signing.key.pem"), file("mila/retired-signing.key.pem"), "MiLa signs with a new key");
    assert_eq!(file("bela/peers/psw-01000115.jwk"), file("mila/signing.pub.jwk"), "BeLa has MiLa's new public key");

    // Both nodes are stopped (their locks are free) and hold the same case, as the page says.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    runtime.block_on(async {
        let id = CaseId::parse(CASE).unwrap();
        let mut copies = Vec::new();
        for node in ["mila", "bela"] {
            let url = format!("sqlite://{}?mode=rw", dir.join(node).join("node.db").display());
            let store = SqliteStore::open(&url).await.unwrap_or_else(|e| panic!("{node}: {e}\n{logs}"));
            let rec = store.get_case(id).await.unwrap().unwrap_or_else(|| panic!("{node} has no case {CASE}"));
            store.close().await;
            copies.push(rec.case);
        }
        let (mila, bela) = (&copies[0], &copies[1]);
        assert_eq!(mila, bela, "both copies of the case are the same");
        assert_eq!((mila.status, mila.revision), (Status::Resolved, 4));
        assert!(mila.solution.is_some());
        let authors: Vec<&str> = mila.journal.iter().map(|j| j.author.organisation.as_str()).collect();
        assert_eq!(authors, ["psw:01000115", "psw:06000042", "psw:01000115"], "the journal of both");
        let refs: Vec<&str> = mila.references.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(refs, ["SH-115-2026-005032", "HZD-WA-2026-2291"], "both ticket numbers");
    });
}

/// `sdx serve` in the background, up once it has printed its first line.
fn serve(config: &Path) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sdx"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.contains("serving peers"), "sdx serve did not start: {line:?}");
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    child
}

fn sdx(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sdx")).args(args).stdin(Stdio::null()).output().unwrap()
}

/// A CA in `d/ca` and a node directory `d/node` from `sdx init` (ports chosen at start): its settings file.
fn new_node(d: &Path) -> PathBuf {
    let arg = |p: &str| d.join(p).to_str().unwrap().to_string();
    assert!(sdx(&["pki", "init", "--out", &arg("ca")]).status.success());
    let (node, ca) = (arg("node"), arg("ca"));
    let init = sdx(&[
        "init",
        "--org",
        "psw:01000115",
        "--out",
        &node,
        "--ca",
        &ca,
        "--host",
        "localhost",
        "--listen",
        "127.0.0.1:0",
        "--api-listen",
        "127.0.0.1:0",
    ]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    d.join("node/node.toml")
}

#[test]
fn a_second_process_on_the_same_database_is_refused_and_a_killed_node_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = new_node(d);

    let mut first = serve(&config);
    // The same settings file, and the same database through another settings file in another directory.
    let other = d.join("elsewhere");
    std::fs::create_dir(&other).unwrap();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("\"sqlite://node.db?mode=rwc\"", "\"sqlite://../node/node.db?mode=rwc\"")
        .replace("= \"signing.key.pem\"", "= \"../node/signing.key.pem\"")
        .replace("= \"node.crt.pem\"", "= \"../node/node.crt.pem\"")
        .replace("= \"node.key.pem\"", "= \"../node/node.key.pem\"")
        .replace("= \"ca.crt.pem\"", "= \"../node/ca.crt.pem\"");
    std::fs::write(other.join("node.toml"), text).unwrap();
    let db = d.canonicalize().unwrap().join("node/node.db");
    for cfg in [config.clone(), other.join("node.toml")] {
        let second = sdx(&["serve", "--config", cfg.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&second.stderr);
        assert_eq!(second.status.code(), Some(2), "{err}");
        assert!(err.contains(&format!("the database {} is in use by process {}", db.display(), first.id())), "{err}");
    }
    assert!(first.try_wait().unwrap().is_none(), "the first node keeps running");

    // kill -9: the operating system releases the lock; the node starts again on its database.
    first.kill().unwrap();
    first.wait().unwrap();
    let mut again = serve(&config);
    std::thread::sleep(Duration::from_millis(300));
    assert!(again.try_wait().unwrap().is_none(), "the restarted node runs");
    again.kill().unwrap();
    again.wait().unwrap();
}

/// What an operator compares over a second channel is true: `sdx keys show` computes a key's thumbprint and
/// refuses a kid that is not it, and so does a node for a peer key (a file whose key was swapped under the kid
/// the operator compared); `sdx pki show` prints what the certificates say and their validity. A node's
/// directory and database are its user's only.
#[test]
fn a_swapped_peer_key_is_refused_and_keys_and_certificates_show_what_to_compare() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let arg = |p: &str| d.join(p).to_str().unwrap().to_string();
    let config = new_node(d);
    let mode = |p: &str| std::fs::metadata(d.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("node"), 0o700);

    // The peer's real key, and a file that carries its kid over another key.
    for k in ["peer", "other"] {
        assert!(sdx(&["keys", "generate", "--alg", "ES256", "--out", &arg(k)]).status.success());
    }
    let jwk = |p: &str| serde_json::from_str::<serde_json::Value>(&read(d, p)).unwrap();
    let (real, mut swapped) = (jwk("peer/public.jwk"), jwk("other/public.jwk"));
    swapped["kid"] = real["kid"].clone();
    std::fs::write(d.join("swapped.jwk"), swapped.to_string()).unwrap();

    let shown = sdx(&["keys", "show", &arg("peer/public.jwk")]);
    let out = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{out}");
    assert!(out.contains(&format!("thumbprint  {}", real["kid"].as_str().unwrap())), "{out}");
    let shown = sdx(&["keys", "show", &arg("swapped.jwk")]);
    assert_eq!(shown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&shown.stderr).contains("is not its key's thumbprint"));

    let base = std::fs::read_to_string(&config).unwrap();
    let with_peer = |key: &str| {
        let block =
            format!("\n[[peers]]\norg = \"psw:06000042\"\nurl = \"https://localhost:9443\"\nsigning_key = \"{key}\"\n");
        std::fs::write(&config, format!("{base}{block}")).unwrap();
    };
    // A JWK set (a key rollover, `sdx keys join`) is checked key by key the same way.
    let join = |files: &[&str], out: &str| {
        let args: Vec<String> = files.iter().map(|f| arg(f)).collect();
        let mut argv = vec!["keys", "join"];
        argv.extend(args.iter().map(String::as_str));
        let joined = sdx(&argv);
        assert!(joined.status.success(), "{}", String::from_utf8_lossy(&joined.stderr));
        std::fs::write(d.join(out), &joined.stdout).unwrap();
    };
    join(&["peer/public.jwk", "other/public.jwk", "peer/public.jwk"], "rollover.jwks");
    join(&["peer/public.jwk", "swapped.jwk"], "rollover-swapped.jwks");
    let shown = sdx(&["keys", "show", &arg("rollover.jwks")]);
    let out = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success() && out.contains("(2 keys)"), "each key once: {out}");
    for bad in ["swapped.jwk", "rollover-swapped.jwks"] {
        with_peer(&arg(bad));
        let refused = sdx(&["serve", "--config", config.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{err}");
        assert!(err.contains(bad) && err.contains("is not the key's RFC 7638 thumbprint"), "{err}");
        assert!(!d.join("node/node.db").exists(), "refused before the database is made");
    }

    with_peer(&arg("rollover.jwks"));
    let mut node = serve(&config);
    for f in ["node/node.db", "node/node.db-wal", "node/node.db-shm"] {
        assert_eq!(mode(f), 0o600, "{f}");
    }
    node.kill().unwrap();
    node.wait().unwrap();

    let shown = sdx(&["pki", "show", &arg("ca/ca.crt.pem"), &arg("node/node.crt.pem")]);
    let out = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{out}");
    assert!(out.contains("CA            yes") && out.contains("organisation  psw:01000115"), "{out}");
    assert!(out.contains("names         localhost") && out.contains("days left"), "{out}");
    assert_eq!(out.matches("SHA-256       ").count(), 2, "{out}");
}
