//! Several ticket systems inside one organisation (issue 9, use case 2.3): one BeLa node, two of its ticket
//! systems as API clients limited to their own cases (`cases = "own"`) and an operator. Two real nodes started
//! through `App::build`, mutual TLS, peers from a signed directory; SQLite and PostgreSQL.
//!
//! A case arriving for the service of one system is owned by it; a case nobody's rule takes has no owner until the
//! operator gives it one. Each system lists, reads, follows (change feed) and changes only its own cases, gets 403
//! `notPermitted` for the other's and for the operators' routes; the two systems' idempotency keys do not meet;
//! the change a system makes reaches the partner.

mod federation;

use std::time::{Duration, Instant};

use reqwest::Method as M;
use serde_json::{Value, json};

use sdx_model::sample::{BELA, MILA};
use sdx_model::*;

use federation::*;

const OTOBO: &str = "otobo-token-of-the-citizen-service-desk";
const REDMINE: &str = "redmine-token-of-the-application-team";
/// The service OTOBO takes (the sample case's).
const LEIKA_OTOBO: &str = "99107004017000";
/// A service nobody's rule names.
const LEIKA_OTHER: &str = "99050012104000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_case_belongs_to_one_ticket_system_of_the_organisation_sqlite() {
    each_case_belongs_to_one_ticket_system_of_the_organisation(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_case_belongs_to_one_ticket_system_of_the_organisation_postgres() {
    each_case_belongs_to_one_ticket_system_of_the_organisation(Db::Postgres).await;
}

/// The sample case with a new id and the service `leika` (no OZG id, so only the LeiKa key can match).
fn case(leika: &str) -> Value {
    let mut c = serde_json::to_value(sample::typical_case()).unwrap();
    c["caseId"] = json!(CaseId::new_random());
    c["category"]["service"] = json!({"leikaKey": leika, "name": "Testleistung"});
    json!({"case": c})
}

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|i| i["case"]["caseId"].as_str().unwrap().to_string()).collect()
}

fn feed_cases(page: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        page["events"].as_array().unwrap().iter().map(|e| e["caseId"].as_str().unwrap().to_string()).collect();
    v.dedup();
    v
}

async fn each_case_belongs_to_one_ticket_system_of_the_organisation(db: Db) {
    let shared = Shared::new();
    let (mila, bela) = (Org::new(MILA).on(db), Org::new(BELA).on(db));
    write(&shared.file, &signed(&shared.authority, 1, vec![mila.entry(json!({})), bela.entry(json!({}))], json!([])));
    let m = start(mila.settings(&shared.ca, &shared.file, &shared.authority_jwk)).await;
    let systems = Options {
        clients: vec![
            ("otobo".into(), OTOBO.into(), format!("cases = \"own\", services = [\"{LEIKA_OTOBO}\"]")),
            ("redmine".into(), REDMINE.into(), "cases = \"own\"".into()),
        ],
        ..Options::default()
    };
    let b = start(bela.settings_with(&shared.ca, &shared.file, &shared.authority_jwk, &systems)).await;
    m.until_version(1).await;
    b.until_version(1).await;

    // MiLa forwards a case for OTOBO's service and one for a service nobody's rule names.
    let mut sent = Vec::new();
    for leika in [LEIKA_OTOBO, LEIKA_OTHER] {
        let (s, v) = m.call(M::POST, "/api/v1/cases?waitForReceipt=20", Some(&case(leika))).await;
        assert_eq!((s, v["delivered"].as_bool()), (201, Some(true)), "{v}");
        sent.push(v["case"]["caseId"].as_str().unwrap().to_string());
    }
    let (mine, nobodys) = (sent[0].clone(), sent[1].clone());

    // At BeLa: the first is OTOBO's (with the rule in its timeline), the second nobody's.
    let (_, v) = b.call(M::GET, &format!("/api/v1/cases/{mine}"), None).await;
    assert_eq!(v["owner"], "otobo", "{v}");
    let owned: Vec<&Value> = v["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == "ownerChanged").collect();
    assert_eq!(owned.len(), 1, "{v}");
    assert!(owned[0]["detail"].as_str().unwrap().contains(LEIKA_OTOBO), "{v}");
    let (_, v) = b.call(M::GET, &format!("/api/v1/cases/{nobodys}"), None).await;
    assert!(v.get("owner").is_none(), "{v}");

    // Each system lists and reads its own cases only; the operator sees both.
    let (_, v) = b.call_as(OTOBO, M::GET, "/api/v1/cases", None).await;
    assert_eq!(ids(&v), vec![mine.clone()]);
    let (_, v) = b.call_as(REDMINE, M::GET, "/api/v1/cases", None).await;
    assert!(ids(&v).is_empty(), "{v}");
    let (_, v) = b.call(M::GET, "/api/v1/cases", None).await;
    assert_eq!(ids(&v).len(), 2, "{v}");
    let (s, v) = b.call_as(REDMINE, M::GET, &format!("/api/v1/cases/{mine}"), None).await;
    assert_eq!((s, v["errorCode"].as_str()), (403, Some("notPermitted")), "{v}");
    let (s, v) = b.call_as(OTOBO, M::GET, &format!("/api/v1/cases/{nobodys}"), None).await;
    assert_eq!((s, v["errorCode"].as_str()), (403, Some("notPermitted")), "{v}");

    // The change feed: OTOBO's has its case only; Redmine's none, and its cursor moved past the others' events.
    let (_, otobo_feed) = b.call_as(OTOBO, M::GET, "/api/v1/events?limit=500", None).await;
    assert_eq!(feed_cases(&otobo_feed), vec![mine.clone()], "{otobo_feed}");
    let (_, redmine_feed) = b.call_as(REDMINE, M::GET, "/api/v1/events?limit=1", None).await;
    assert!(feed_cases(&redmine_feed).is_empty(), "{redmine_feed}");
    let redmine_next = redmine_feed["next"].as_str().unwrap().to_string();
    let (_, all) = b.call(M::GET, "/api/v1/events?limit=500", None).await;
    assert_eq!(redmine_next, all["next"].as_str().unwrap(), "Redmine's cursor is where the whole feed ends");

    // Neither changes, reports on or escalates the other's case, nor uses the operators' routes.
    let upd = json!({"update": {"revision": 0, "status": "inProgress"}});
    let (s, v) = b.call_as(REDMINE, M::POST, &format!("/api/v1/cases/{mine}/changes"), Some(&upd)).await;
    assert_eq!((s, v["errorCode"].as_str()), (403, Some("notPermitted")), "{v}");
    let (s, _) =
        b.call_as(REDMINE, M::POST, &format!("/api/v1/cases/{mine}/reports"), Some(&json!({"detail": "x"}))).await;
    assert_eq!(s, 403);
    let (s, _) = b.call_as(REDMINE, M::POST, &format!("/api/v1/cases/{mine}/escalations"), Some(&json!({}))).await;
    assert_eq!(s, 403);
    for path in ["/api/v1/deliveries", "/api/v1/blocked"] {
        let (s, v) = b.call_as(OTOBO, M::GET, path, None).await;
        assert_eq!((s, v["errorCode"].as_str()), (403, Some("notPermitted")), "{path}: {v}");
    }
    let give = |owner: Value| json!({"owner": owner});
    let (s, _) = b.call_as(OTOBO, M::PUT, &format!("/api/v1/cases/{nobodys}/owner"), Some(&give(json!("otobo")))).await;
    assert_eq!(s, 403, "a ticket system does not take cases itself");
    let (_, v) = b.call(M::GET, &format!("/api/v1/cases/{mine}"), None).await;
    assert_eq!(v["case"]["status"], "new", "nothing changed: {v}");

    // The operator gives the second case to Redmine (an unknown client is refused).
    let (s, v) = b.call(M::PUT, &format!("/api/v1/cases/{nobodys}/owner"), Some(&give(json!("jira")))).await;
    assert_eq!((s, v["errorCode"].as_str()), (422, Some("schemaViolation")), "{v}");
    // Redmine waits on its feed; MiLa adds to the case while nobody owns it (an event Redmine does not get), then
    // the operator gives it to Redmine: the wait ends with the case (its connector would create the ticket).
    let waiting = {
        let url = format!("{}/api/v1/events?after={redmine_next}&wait=20", b.api);
        tokio::spawn(async move {
            let r = reqwest::Client::new().get(url).bearer_auth(REDMINE).send().await.unwrap();
            r.json::<Value>().await.unwrap()
        })
    };
    let entry = json!({"id": ItemId::new_random(), "visibility": "public", "author": {"organisation": MILA},
        "createdAt": "2026-11-30T10:00:00Z", "text": "Nachtrag."});
    let note = json!({"update": {"revision": 0, "journal": [entry]}});
    let (s, v) = m.call(M::POST, &format!("/api/v1/cases/{nobodys}/changes"), Some(&note)).await;
    assert_eq!(s, 200, "{v}");
    settle(&m).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, v) = b.call(M::PUT, &format!("/api/v1/cases/{nobodys}/owner"), Some(&give(json!("redmine")))).await;
    assert_eq!((s, v["owner"].as_str()), (200, Some("redmine")), "{v}");
    let v = waiting.await.unwrap();
    assert_eq!(feed_cases(&v), vec![nobodys.clone()], "{v}");
    assert!(
        v["events"].as_array().unwrap().iter().any(
            |e| e["kind"] == "ownerChanged" && e["detail"].as_str().unwrap().contains("nobody → redmine (by test)")
        )
    );
    let (_, v) = b.call_as(REDMINE, M::GET, "/api/v1/cases", None).await;
    assert_eq!(ids(&v), vec![nobodys.clone()]);

    // Both systems use the same idempotency key (their own ticket ids may well be equal): both changes apply.
    for (token, id) in [(OTOBO, &mine), (REDMINE, &nobodys)] {
        let r = reqwest::Client::new()
            .post(format!("{}/api/v1/cases/{id}/changes", b.api))
            .bearer_auth(token)
            .header("Idempotency-Key", "ticket-4711-status")
            .json(&upd)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("idempotent-replayed").is_none(), "not a replay of the other system's change");
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            (v["case"]["caseId"].as_str(), v["case"]["status"].as_str()),
            (Some(id.as_str()), Some("inProgress"))
        );
    }

    // The changes reach MiLa.
    settle(&b).await;
    let t = Instant::now();
    for id in [&mine, &nobodys] {
        loop {
            let (_, v) = m.call(M::GET, &format!("/api/v1/cases/{id}"), None).await;
            if v["case"]["status"] == "inProgress" {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "{v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    m.shutdown().await;
    b.shutdown().await;
}
