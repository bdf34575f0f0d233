//! PostgreSQL for tests: the server named by `SDX_TEST_DATABASE_URL`, or else a throw-away cluster that the test
//! binary starts once (first use) and that disappears with the binary; a fresh schema per test.
//!
//! How the throw-away cluster is cleaned up: before anything is started, the binary spawns a small watchdog
//! shell in its own process group whose standard input is a pipe from this process. The write end of that pipe
//! is held in a static and is close-on-exec, so nothing else inherits it; when the test binary ends — normally,
//! by panic, or killed with SIGKILL — the kernel closes it, the watchdog's `cat` sees end of file, and the
//! watchdog stops the server (`pg_ctl stop -m immediate`) and removes the data directory. Statics are never
//! dropped in Rust, so a `Drop` guard could not do this; `atexit` needs `unsafe` and misses signals.
//!
//! When running as root (CI, this machine) `initdb` and `pg_ctl` run as the `postgres` user via `su`, in
//! `/tmp/sdx-pg-XXXX` (mode 755, owned by `postgres`). The server listens on 127.0.0.1 on a free port and on a
//! Unix socket inside that directory, with `fsync=off` (durability of a throw-away cluster does not matter).
//! Missing binaries make every PostgreSQL test fail with a message saying what to install.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// Where Debian's `postgresql-15` puts its binaries; `SDX_PG_BIN` overrides.
const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";

struct Server {
    url: String,
    /// Write end of the watchdog's stdin; closed by the kernel when this process ends.
    _watchdog: Option<Mutex<ChildStdin>>,
}

static SERVER: OnceLock<Server> = OnceLock::new();

/// A new schema name (`t_<uuid>`): one per test, so that tests share the server but not their tables.
pub fn schema_name() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

/// Drop a test's schema (matters only on a server that outlives the test binary).
pub async fn drop_schema(schema: &str) {
    if let Ok(pool) = sqlx::PgPool::connect(server_url()).await {
        let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
        let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await;
        pool.close().await;
    }
}

/// The base URL of the test server (starting the throw-away cluster on first use).
pub fn server_url() -> &'static str {
    &SERVER
        .get_or_init(|| match std::env::var("SDX_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Server { url, _watchdog: None },
            _ => start_cluster(),
        })
        .url
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.trim_ascii() == b"0").unwrap_or(false)
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Run a shell command line, as `postgres` when we are root.
fn run_as_pg(root: bool, line: &str) -> std::io::Result<std::process::Output> {
    if root {
        Command::new("su").args(["postgres", "-s", "/bin/sh", "-c", line]).output()
    } else {
        Command::new("sh").args(["-c", line]).output()
    }
}

fn start_cluster() -> Server {
    let bin = PathBuf::from(std::env::var("SDX_PG_BIN").unwrap_or_else(|_| DEFAULT_BIN.into()));
    let initdb = bin.join("initdb");
    let pg_ctl = bin.join("pg_ctl");
    if !initdb.exists() || !pg_ctl.exists() {
        panic!(
            "PostgreSQL tests need PostgreSQL 15: {} not found. Install it (`apt-get install postgresql-15`, which \
             scripts/test.sh does), set SDX_PG_BIN to another bin directory, or set SDX_TEST_DATABASE_URL to a \
             server (postgres://user:password@host:port/database).",
            initdb.display()
        );
    }
    let root = is_root();
    let dir = tempfile::Builder::new().prefix("sdx-pg-").tempdir_in("/tmp").expect("temp dir in /tmp").keep();
    let dir_s = dir.to_str().expect("temp path is UTF-8").to_owned();
    let data = format!("{dir_s}/data");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
    }
    if root {
        let ok = Command::new("chown").args(["postgres:", &dir_s]).status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "chown postgres {dir_s} failed (is there a `postgres` user? apt-get install postgresql-15)");
    }

    // The watchdog first, so that nothing started below can outlive this process.
    let stop = format!("{} -D {} -m immediate stop", sh_quote(pg_ctl.to_str().unwrap()), sh_quote(&data));
    let stop = if root { format!("su postgres -s /bin/sh -c {}", sh_quote(&stop)) } else { stop };
    let watchdog_script = format!("cat >/dev/null; {stop} >/dev/null 2>&1; rm -rf {}", sh_quote(&dir_s));
    let mut watchdog = Command::new("sh")
        .args(["-c", &watchdog_script])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn the cleanup watchdog");
    let pipe = watchdog.stdin.take().expect("watchdog stdin");
    // The child is reaped by nobody while we run; it exits after we do.
    std::mem::forget(watchdog);

    let init = format!(
        "{} -D {} -A trust -U postgres -E UTF8 --locale=C --no-sync",
        sh_quote(initdb.to_str().unwrap()),
        sh_quote(&data)
    );
    let out = run_as_pg(root, &init).expect("run initdb");
    assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));

    let mut last_err = String::new();
    for _ in 0..5 {
        let port = free_port();
        let opts = format!(
            "-p {port} -k {dir_s} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=400 -c shared_buffers=64MB"
        );
        let start = format!(
            "{} -D {} -o {} -l {} -w -t 60 start",
            sh_quote(pg_ctl.to_str().unwrap()),
            sh_quote(&data),
            sh_quote(&opts),
            sh_quote(&format!("{dir_s}/log"))
        );
        let out = run_as_pg(root, &start).expect("run pg_ctl start");
        if out.status.success() {
            return Server {
                url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
                _watchdog: Some(Mutex::new(pipe)),
            };
        }
        last_err = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(Path::new(&dir_s).join("log")).unwrap_or_default()
        );
    }
    // Closing the pipe tells the watchdog to clean up now.
    drop(pipe);
    panic!("could not start PostgreSQL: {last_err}");
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// Every row of every table in `schema`, as text (`row::text`), one per line: what a node keeps there.
pub async fn schema_text(schema: &str) -> String {
    let pool = sqlx::PgPool::connect(server_url()).await.expect("connecting to the test server");
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1")
            .bind(schema)
            .fetch_all(&pool)
            .await
            .expect("listing the schema's tables");
    let mut out = String::new();
    for (t,) in tables {
        let q = format!("SELECT t::text FROM \"{schema}\".\"{t}\" t");
        let rows: Vec<(String,)> =
            sqlx::query_as(sqlx::AssertSqlSafe(q)).fetch_all(&pool).await.expect("reading a table");
        for (r,) in rows {
            out.push_str(&r);
            out.push('\n');
        }
    }
    pool.close().await;
    out
}
