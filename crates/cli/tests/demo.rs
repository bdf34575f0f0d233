//! `sdx demo` end to end: two nodes on loopback with mutual TLS run use cases 2.1 and 2.2 and agree, and
//! `sdx demo --topology hub|federation` runs a portal, a MiLa, two BeLa candidates and a vendor, or 16 Länder, behind
//! a hub — on the
//! embedded default (SQLite) and on PostgreSQL (the server `scripts/test.sh` starts; its URL comes in
//! `SDX_TEST_DATABASE_URL`); `sdx bench forward` keeps its output contract.

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
fn demo_topology_hub_on_sqlite() {
    let (code, out) = demo(&["--topology", "hub"]);
    assert_eq!(code, 0, "{out}");
    for seen in [
        "routed by the directory (1st level",
        "rejects it as not responsible",
        "rerouted to the next candidate",
        "(3rd level)",
        "status flowed back: vendor → BeLa → MiLa → portal",
        "maintenance notice is in the portal's feed",
        "the hub's files hold no case content",
        "every party's view is consistent",
    ] {
        assert!(out.contains(seen), "{seen}: {out}");
    }
    let (code, out) = demo(&["--topology", "star"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("unknown topology"), "{out}");
}

#[test]
fn demo_topology_federation_routes_every_case_once_and_back() {
    let (code, out) = demo(&["--topology", "federation"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("160 cases between random pairs of 16 Länder"), "{out}");
    assert!(out.contains("every case arrived once"), "{out}");
    assert!(out.contains("160 resolutions flowed back"), "{out}");
}

#[test]
fn demo_topologies_on_postgresql() {
    let url = std::env::var("SDX_TEST_DATABASE_URL")
        .expect("SDX_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh, which starts PostgreSQL");
    // The federation twice: the second run finds the first run's cases in the same schemas and must not count them.
    for topology in ["hub", "federation", "federation"] {
        let (code, out) = demo(&["--topology", topology, "--database-url", &url]);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("PostgreSQL, a schema per node") && out.contains("every party's view is consistent"),
            "{out}"
        );
    }
}

#[test]
fn demo_on_postgresql() {
    let url = std::env::var("SDX_TEST_DATABASE_URL")
        .expect("SDX_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh, which starts PostgreSQL");
    let (code, out) = demo(&["--database-url", &url]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("PostgreSQL, one schema per node") && out.contains("both sides agree"), "{out}");
}

#[test]
fn bench_forward_ends_with_the_promised_json_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_sdx"))
        .args(["bench", "forward", "--count", "30", "--concurrency", "4", "--json"])
        .output()
        .expect("sdx bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    for key in ["tickets_per_s", "p50_ms", "p99_ms", "baseline_per_s"] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key} in {last}");
    }
    assert_eq!(v["count"], 30);
    // The CPU the run took (both nodes and the load generator, from /proc, in ticks of 10 ms): some, and at most
    // all cores for the run's time (give or take a few ticks: each reading is rounded down, and the readings
    // frame the timed part).
    let cores = std::thread::available_parallelism().unwrap().get() as f64;
    let (cpu_ms, busy) = (v["cpu_ms_per_case"].as_f64().unwrap() * 30.0, v["cores_busy"].as_f64().unwrap());
    let elapsed_ms = 30.0 / v["tickets_per_s"].as_f64().unwrap() * 1000.0;
    assert!(cpu_ms > 0.0 && busy > 0.0 && cpu_ms <= cores * elapsed_ms + 50.0, "cpu in {last}");
    assert!(stdout.contains("ms per case"), "{stdout}");
}

#[test]
fn bench_hub_compares_bilateral_and_hub_in_one_json_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_sdx"))
        .args(["bench", "hub", "--count", "40", "--concurrency", "4", "--json"])
        .output()
        .expect("sdx bench hub runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    for k in ["bilateral_per_s", "hub_per_s", "bilateral_p50_ms", "hub_p50_ms", "added_p50_ms", "hub_process_per_s"] {
        assert!(last[k].is_number(), "{k}: {last}");
    }
    for k in ["hub_per_s", "bilateral_per_s", "hub_process_per_s", "hub_cpu_ms_per_message", "hub_capacity_per_s"] {
        assert!(last[k].as_f64().is_some_and(|v| v > 0.0), "{k}: {last}");
    }
    assert_eq!(last["count"], 40);
}
