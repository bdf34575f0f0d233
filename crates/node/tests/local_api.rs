//! The local API over real HTTP on 127.0.0.1:0: bearer tokens, create-and-forward, changes, the case with its
//! timeline, queries with paging and `fields` selection, the outbox, and problem+json answers with stable codes.

use sdx_crypto::{Alg, PrivateKey};
use sdx_model::sample::{self, BELA, MILA};
use sdx_model::*;
use sdx_node::engine::{Engine, Peer};
use sdx_node::local_api;
use sdx_node::protocol::{Identity, sha256};
use sdx_node::settings::{ApiClient, DeliverySettings};
use sdx_store::{SqliteStore, Store};
use serde_json::{Value, json};

const TOKEN: &str = "s3cr3t-token-of-the-rt-connector";

async fn start() -> (String, tempfile::TempDir) {
    let (base, dir, _) = start_with_engine().await;
    (base, dir)
}

async fn start_with_engine() -> (String, tempfile::TempDir, Engine<SqliteStore>) {
    start_with_clients(vec![ApiClient::all_cases("rt", sha256(TOKEN.as_bytes()).to_string())]).await
}

async fn start_with_clients(clients: Vec<ApiClient>) -> (String, tempfile::TempDir, Engine<SqliteStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteStore::open(&format!("sqlite://{}?mode=rwc", dir.path().join("mila.db").display())).await.unwrap();
    let bela_key = PrivateKey::generate(Alg::Es256).unwrap().public_key(Alg::Es256).unwrap();
    let engine = Engine::new(
        Identity {
            org: OrgKey::parse(MILA).unwrap(),
            name: None,
            signing_key: PrivateKey::generate(Alg::Es256).unwrap(),
        },
        store,
        // The peer is not running: forwards stay in the outbox.
        vec![Peer::new(OrgKey::parse(BELA).unwrap(), "https://localhost:1", bela_key)],
        DeliverySettings::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, local_api::router(engine.clone(), &clients)).into_future());
    (base, dir, engine)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

async fn call(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value, String) {
    let mut rq = client().request(method, url).bearer_auth(TOKEN);
    if let Some(b) = body {
        rq = rq.json(&b);
    }
    let r = rq.send().await.unwrap();
    let status = r.status().as_u16();
    let ctype = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), ctype)
}

/// A case a ticket system limited to its own cases creates is its own: the other system of the organisation
/// neither sees nor changes it, the operator sees it with its owner.
#[tokio::test]
async fn a_case_created_by_one_of_several_ticket_systems_is_its_own() {
    use sdx_node::settings::CaseScope;
    let own = |name: &str, token: &str| ApiClient {
        cases: CaseScope::Own,
        ..ApiClient::all_cases(name, sha256(token.as_bytes()).to_string())
    };
    let clients = vec![
        ApiClient::all_cases("rt", sha256(TOKEN.as_bytes()).to_string()),
        own("otobo", "otobo-token"),
        own("redmine", "redmine-token"),
    ];
    let (base, _dir, _engine) = start_with_clients(clients).await;
    let as_ = |token: &'static str, rq: reqwest::RequestBuilder| rq.bearer_auth(token);
    let mut case = sample::typical_case();
    case.case_id = CaseId::new_random();
    let r =
        as_("otobo-token", client().post(format!("{base}/cases"))).json(&json!({"case": case})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let view = |token: &'static str| {
        let url = format!("{base}/cases/{}", case.case_id);
        async move { as_(token, client().get(url)).send().await.unwrap() }
    };
    let r = view(TOKEN).await;
    assert_eq!(r.json::<Value>().await.unwrap()["owner"], "otobo");
    assert_eq!(view("otobo-token").await.status(), 200);
    assert_eq!(view("redmine-token").await.status(), 403);
    let list = |token: &'static str| {
        let url = format!("{base}/cases");
        async move { as_(token, client().get(url)).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert_eq!(list("otobo-token").await["items"].as_array().unwrap().len(), 1);
    assert_eq!(list("redmine-token").await["items"].as_array().unwrap().len(), 0);
    let entry = json!({"id": ItemId::new_random(), "visibility": "public",
        "author": {"organisation": MILA}, "createdAt": "2026-11-30T10:00:00Z", "text": "Nachtrag."});
    let change = json!({"update": {"revision": 0, "journal": [entry]}});
    let url = format!("{base}/cases/{}/changes", case.case_id);
    let r = as_("redmine-token", client().post(&url)).json(&change).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = as_("otobo-token", client().post(&url)).json(&change).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_local_api_end_to_end() {
    let (base, _dir) = start().await;
    use reqwest::Method as M;

    // No token, a wrong token: 401 problem.
    let r = client().get(format!("{base}/cases")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = client().get(format!("{base}/cases")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), 401);

    // Create and forward.
    let mut case = sample::typical_case();
    case.case_id = CaseId::new_random();
    let id = case.case_id;
    let (s, v, _) = call(M::POST, &format!("{base}/cases"), Some(json!({"case": case, "note": "Bitte prüfen"}))).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["case"]["caseId"], id.to_string());
    // The same case again: conflict.
    let (s, v, ct) = call(M::POST, &format!("{base}/cases"), Some(json!({"case": case}))).await;
    assert_eq!((s, v["errorCode"].as_str(), ct.as_str()), (409, Some("inconsistentCase"), "application/problem+json"));
    // Invalid documents: typed problems with the SDX code.
    let mut bad = serde_json::to_value(&case).unwrap();
    bad["priority"] = json!("low");
    let (s, v, _) = call(M::POST, &format!("{base}/cases"), Some(json!({"case": bad}))).await;
    assert_eq!((s, v["errorCode"].as_str()), (422, Some("priorityMismatch")), "{v}");
    let mut bad = serde_json::to_value(&case).unwrap();
    bad["region"] = json!("1234");
    let (s, v, _) = call(M::POST, &format!("{base}/cases"), Some(json!({"case": bad}))).await;
    assert_eq!((s, v["errorCode"].as_str()), (400, Some("invalidIdentifier")), "{v}");

    // The originator may add information but not set the status from new.
    let entry = json!({"id": ItemId::new_random(), "visibility": "public",
        "author": {"organisation": MILA}, "createdAt": "2026-11-30T10:00:00Z", "text": "Nachtrag der Bürgerin."});
    let url = format!("{base}/cases/{id}/changes");
    let (s, v, _) = call(M::POST, &url, Some(json!({"update": {"revision": 0, "journal": [entry]}}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["case"]["revision"], 2);
    let (s, v, _) = call(M::POST, &url, Some(json!({"update": {"revision": 0, "status": "inProgress"}}))).await;
    assert_eq!((s, v["errorCode"].as_str()), (403, Some("notPermitted")), "{v}");
    let (s, _, _) = call(
        M::POST,
        &format!("{base}/cases/{}/changes", CaseId::new_random()),
        Some(json!({"close": {"revision": 0}})),
    )
    .await;
    assert_eq!(s, 404);

    // The case with its timeline.
    let (s, v, _) = call(M::GET, &format!("{base}/cases/{id}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(v["partner"], BELA);
    assert!(v["timeline"].as_array().unwrap().len() >= 2, "{v}");

    // Queries: filters and paging.
    for _ in 0..3 {
        let mut c = sample::typical_case();
        c.case_id = CaseId::new_random();
        c.ticket_type = TicketType::ServiceRequest;
        assert_eq!(call(M::POST, &format!("{base}/cases"), Some(json!({"case": c}))).await.0, 201);
    }
    let (_, v, _) = call(M::GET, &format!("{base}/cases?ticketType=serviceRequest&limit=2"), None).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    let cursor = v["nextCursor"].as_str().unwrap().to_string();
    let (_, v, _) =
        call(M::GET, &format!("{base}/cases?ticketType=serviceRequest&limit=2&cursor={cursor}"), None).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let (_, v, _) = call(M::GET, &format!("{base}/cases?status=new&region=01&partner={BELA}"), None).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 4);
    let (s, v, _) = call(M::GET, &format!("{base}/cases?status=open"), None).await;
    assert_eq!((s, v["errorCode"].as_str()), (400, Some("unknownCode")));
    let (s, _, _) = call(M::GET, &format!("{base}/cases?colour=red"), None).await;
    assert_eq!(s, 400);

    // The outbox: everything pending (the peer is down); a retry of a message that is not dead is a 404.
    let (_, v, _) = call(M::GET, &format!("{base}/deliveries?state=pending"), None).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 5);
    let first = v["items"][0]["messageId"].as_str().unwrap().to_string();
    let (s, _, _) = call(M::POST, &format!("{base}/deliveries/{first}/retry"), None).await;
    assert_eq!(s, 404);
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

/// What `fields=names` must give for the full view `whole`: the selected view members as they are, and in `case`
/// either the whole case (`case` selected) or `caseId` with the selected case attributes the case has.
fn projection(whole: &Value, names: &[&str]) -> Value {
    let mut v = serde_json::Map::new();
    for (k, val) in whole.as_object().unwrap() {
        if k != "case" && names.contains(&k.as_str()) {
            v.insert(k.clone(), val.clone());
        }
    }
    let case = whole["case"].as_object().unwrap();
    let case = if names.contains(&"case") {
        Value::Object(case.clone())
    } else {
        Value::Object(
            case.iter()
                .filter(|(k, _)| *k == "caseId" || names.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    v.insert("case".into(), case);
    Value::Object(v)
}

#[tokio::test]
async fn fields_select_members_of_a_case_view() {
    let (base, _dir) = start().await;
    use reqwest::Method as M;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut c = sample::typical_case();
        c.case_id = CaseId::new_random();
        ids.push(c.case_id.to_string());
        assert_eq!(call(M::POST, &format!("{base}/cases"), Some(json!({"case": c}))).await.0, 201);
    }

    // The query: exactly the selected members plus case.caseId, with the values of the full answer.
    let (s, full, _) = call(M::GET, &format!("{base}/cases"), None).await;
    assert_eq!(s, 200);
    let full = full["items"].as_array().unwrap().clone();
    assert_eq!(full.len(), 3);
    assert_ne!(full[0]["updatedAt"], full[0]["case"]["updatedAt"], "the record's and the case's own updatedAt differ");
    // (query value, the names it holds, the keys of each item, the keys inside case or None for the whole case)
    let whole_case: Option<&[&str]> = None;
    for (sel, names, item_keys, case_keys) in [
        // View members only.
        ("partner", &["partner"][..], &["case", "partner"][..], Some(&["caseId"][..])),
        ("ourRole,partner", &["ourRole", "partner"], &["case", "ourRole", "partner"], Some(&["caseId"])),
        ("partner,%20ourRole,partner", &["ourRole", "partner"], &["case", "ourRole", "partner"], Some(&["caseId"])), // trimmed, duplicates
        ("case", &["case"], &["case"], whole_case),
        (
            "case,partner,ourRole,updatedAt",
            &["case", "partner", "ourRole", "updatedAt"],
            &["case", "ourRole", "partner", "updatedAt"],
            whole_case,
        ),
        // Case attributes: inside case, next to caseId.
        ("status,priority", &["status", "priority"], &["case"], Some(&["caseId", "priority", "status"])),
        (
            "status,priority,partner",
            &["status", "priority", "partner"],
            &["case", "partner"],
            Some(&["caseId", "priority", "status"]),
        ),
        (
            "subject,%20ticketType,subject,requester",
            &["subject", "ticketType", "requester"],
            &["case"],
            Some(&["caseId", "requester", "subject", "ticketType"]),
        ),
        ("caseId", &["caseId"], &["case"], Some(&["caseId"])),
        ("partner,caseId", &["partner", "caseId"], &["case", "partner"], Some(&["caseId"])),
        // Optional attributes the case does not have stay absent.
        (
            "solution,pendingReason,attachments,relatedCases",
            &["solution", "pendingReason", "attachments", "relatedCases"],
            &["case"],
            Some(&["caseId"]),
        ),
        ("solution,region", &["solution", "region"], &["case"], Some(&["caseId", "region"])),
        // updatedAt is both a view member and a case attribute: both are returned.
        ("updatedAt", &["updatedAt"], &["case", "updatedAt"], Some(&["caseId", "updatedAt"])),
        (
            "ourRole,updatedAt,status",
            &["ourRole", "updatedAt", "status"],
            &["case", "ourRole", "updatedAt"],
            Some(&["caseId", "status", "updatedAt"]),
        ),
        // With case selected, the whole case; case attributes add nothing.
        ("status,case,priority", &["status", "case", "priority"], &["case"], whole_case),
        ("case,solution,partner", &["case", "solution", "partner"], &["case", "partner"], whole_case),
    ] {
        let (s, v, _) = call(M::GET, &format!("{base}/cases?fields={sel}"), None).await;
        assert_eq!(s, 200, "{sel}: {v}");
        let items = v["items"].as_array().unwrap();
        assert_eq!(items.len(), full.len(), "{sel}");
        assert!(v["nextCursor"].is_null(), "{sel}: {v}");
        for (item, whole) in items.iter().zip(&full) {
            // The values are those of the full answer.
            assert_eq!(item, &projection(whole, names), "{sel}");
            assert_eq!(keys(item), item_keys, "{sel}: {item}");
            match case_keys {
                Some(k) => assert_eq!(keys(&item["case"]), k, "{sel}: {item}"),
                None => assert_eq!(item["case"], whole["case"], "{sel}: the whole case"),
            }
            assert_eq!(item["case"]["caseId"], whole["case"]["caseId"], "{sel}: caseId always");
        }
    }
    // The TMF621 idiom, spelt out.
    let (s, v, _) = call(M::GET, &format!("{base}/cases?fields=status,priority,partner"), None).await;
    assert_eq!(s, 200, "{v}");
    let w = &full[0];
    assert_eq!(
        v["items"][0],
        json!({"case": {"caseId": w["case"]["caseId"], "status": "new", "priority": "high"}, "partner": BELA})
    );

    // Filters and paging work with fields: the same cases, page by page.
    let (s, p1, _) = call(M::GET, &format!("{base}/cases?limit=2&fields=ourRole,status&status=new"), None).await;
    assert_eq!(s, 200, "{p1}");
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    let cursor = p1["nextCursor"].as_str().unwrap().to_string();
    let (s, p2, _) = call(M::GET, &format!("{base}/cases?fields=ourRole,status&cursor={cursor}&limit=2"), None).await;
    assert_eq!(s, 200, "{p2}");
    assert_eq!(p2["items"].as_array().unwrap().len(), 1);
    assert!(p2["nextCursor"].is_null());
    let paged: Vec<_> = p1["items"].as_array().unwrap().iter().chain(p2["items"].as_array().unwrap()).collect();
    assert_eq!(paged.len(), full.len());
    for (item, whole) in paged.iter().zip(&full) {
        assert_eq!(keys(item), ["case", "ourRole"]);
        assert_eq!(item["case"], json!({"caseId": whole["case"]["caseId"], "status": "new"}));
        assert_eq!(item["ourRole"], whole["ourRole"]);
    }
    let mut seen: Vec<String> = paged.iter().map(|i| i["case"]["caseId"].as_str().unwrap().to_string()).collect();
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);

    // Refused: unknown, nested, empty; a problem with schemaViolation that names the member and the allowed ones.
    for (sel, names) in [
        ("stat", Some("`stat`")),
        ("partner,case_id", Some("`case_id`")),
        ("timeline", Some("`timeline`")), // only on a single case
        ("Partner", Some("`Partner`")),
        ("Status", Some("`Status`")),
        ("status,id", Some("`id`")),
        ("case.status", Some("`case.status`")),
        ("category.symptom", Some("`category.symptom`")),
        ("", None),
        ("%20", None),
        (",partner", None),
        ("status,", None),
        ("partner,,case", None),
        ("%00%FF%C3%A4%E2%80%AE", None),
    ] {
        let (s, v, ct) = call(M::GET, &format!("{base}/cases?fields={sel}"), None).await;
        assert_eq!(
            (s, v["errorCode"].as_str(), ct.as_str()),
            (400, Some("schemaViolation"), "application/problem+json"),
            "{sel}: {v}"
        );
        let detail = v["detail"].as_str().unwrap();
        assert!(
            detail
                .contains("view members case, partner, ourRole, updatedAt, owner; case attributes caseId, revision, "),
            "{sel}: {detail}"
        );
        assert!(
            detail.contains(", status, ") && detail.contains(", priority, ") && detail.contains("serviceLevel"),
            "{detail}"
        );
        if let Some(n) = names {
            assert!(detail.contains(n), "{sel}: {detail}");
        }
    }
    let (s, v, _) = call(M::GET, &format!("{base}/cases?fields"), None).await;
    assert_eq!((s, v["errorCode"].as_str()), (400, Some("schemaViolation")), "{v}");
    let (s, v, _) = call(M::GET, &format!("{base}/cases?fields=case&fields=partner"), None).await;
    assert_eq!((s, v["errorCode"].as_str()), (400, Some("schemaViolation")), "{v}");
    let long = "x".repeat(4000);
    let (s, _, _) = call(M::GET, &format!("{base}/cases?fields={long}"), None).await;
    assert_eq!(s, 400);

    // A single case: the same rules, with the timeline as one more member (fetched only when selected).
    let id = &ids[0];
    let (s, whole, _) = call(M::GET, &format!("{base}/cases/{id}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(keys(&whole), ["case", "ourRole", "partner", "timeline", "updatedAt"]);
    let (s, v, _) = call(M::GET, &format!("{base}/cases/{id}?fields=timeline"), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"case": {"caseId": id}, "timeline": whole["timeline"]}));
    let (s, v, _) = call(M::GET, &format!("{base}/cases/{id}?fields=case,partner,ourRole,updatedAt"), None).await;
    assert_eq!(s, 200, "{v}");
    let mut without_timeline = whole.clone();
    without_timeline.as_object_mut().unwrap().remove("timeline");
    assert_eq!(v, without_timeline);
    for names in [
        &["status", "priority", "partner"][..],
        &["timeline", "subject", "solution"],
        &["revision", "statusHistory", "updatedAt", "timeline"],
        &["caseId"],
        &["case", "status", "timeline"],
    ] {
        let sel = names.join(",");
        let (s, v, _) = call(M::GET, &format!("{base}/cases/{id}?fields={sel}"), None).await;
        assert_eq!(s, 200, "{sel}: {v}");
        assert_eq!(v, projection(&whole, names), "{sel}");
        assert_eq!(v["case"]["caseId"], json!(id), "{sel}");
    }
    let (s, v, _) = call(M::GET, &format!("{base}/cases/{id}?fields=status,timeline"), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"case": {"caseId": id, "status": "new"}, "timeline": whole["timeline"]}));
    for sel in ["stat", "", "case,", "timeline.kind", "case.status"] {
        let (s, v, _) = call(M::GET, &format!("{base}/cases/{id}?fields={sel}"), None).await;
        assert_eq!((s, v["errorCode"].as_str()), (400, Some("schemaViolation")), "{sel}: {v}");
        assert!(
            v["detail"]
                .as_str()
                .unwrap()
                .contains("view members case, partner, ourRole, updatedAt, owner, timeline; case attributes caseId, "),
            "{v}"
        );
    }
    // An unknown case with a valid selection is still a 404.
    let (s, _, _) = call(M::GET, &format!("{base}/cases/{}?fields=partner,status", CaseId::new_random()), None).await;
    assert_eq!(s, 404);
}

/// Both case reads refuse query parameters they do not know, with the same problem.
#[tokio::test]
async fn unknown_query_parameters_are_refused_on_both_case_reads() {
    let (base, _dir) = start().await;
    use reqwest::Method as M;
    let c = sample::typical_case();
    let id = c.case_id.to_string();
    assert_eq!(call(M::POST, &format!("{base}/cases"), Some(json!({"case": c}))).await.0, 201);
    assert_eq!(call(M::GET, &format!("{base}/cases/{id}"), None).await.0, 200);
    for path in [format!("{base}/cases/{id}"), format!("{base}/cases")] {
        for q in ["other=1", "fields=partner&other=1", "Fields=partner", "field=partner", "status=new&fields=status"] {
            let (s, v, ct) = call(M::GET, &format!("{path}?{q}"), None).await;
            if q.starts_with("status=") && path.ends_with("/cases") {
                assert_eq!(s, 200, "{path}?{q}: {v}"); // status is a filter of the query only
                continue;
            }
            assert_eq!(
                (s, v["errorCode"].as_str(), ct.as_str()),
                (400, Some("schemaViolation"), "application/problem+json"),
                "{path}?{q}: {v}"
            );
            assert!(v["detail"].as_str().unwrap().contains("unknown field"), "{path}?{q}: {v}");
        }
    }
    // An unknown parameter is refused before the case is looked up.
    let (s, v, _) = call(M::GET, &format!("{base}/cases/{}?other=1", CaseId::new_random()), None).await;
    assert_eq!((s, v["errorCode"].as_str()), (400, Some("schemaViolation")), "{v}");
}

#[tokio::test]
async fn create_can_wait_for_the_receipt() {
    let (base, _dir) = start().await;
    use reqwest::Method as M;
    let mut case = sample::typical_case();
    case.case_id = CaseId::new_random();
    // The peer is down: the answer comes after the wait, committed but not delivered.
    let t = std::time::Instant::now();
    let (s, v, _) = call(M::POST, &format!("{base}/cases?waitForReceipt=1"), Some(json!({"case": case}))).await;
    assert_eq!((s, &v["delivered"]), (201, &json!(false)), "{v}");
    assert!(t.elapsed() >= std::time::Duration::from_secs(1));
    let (s, v, _) = call(M::GET, &format!("{base}/cases/{}", case.case_id), None).await;
    assert_eq!(s, 200, "committed: {v}");
    // Without the parameter: no wait, no `delivered`.
    case.case_id = CaseId::new_random();
    let (s, v, _) = call(M::POST, &format!("{base}/cases"), Some(json!({"case": case}))).await;
    assert_eq!((s, v.get("delivered")), (201, None), "{v}");
    // Bad waits are refused before anything is stored.
    for q in ["waitForReceipt=61", "waitForReceipt=abc", "waitForReceipt=-1", "wait=1"] {
        case.case_id = CaseId::new_random();
        let (s, v, _) = call(M::POST, &format!("{base}/cases?{q}"), Some(json!({"case": case}))).await;
        assert_eq!((s, v["errorCode"].as_str()), (400, Some("schemaViolation")), "{q}: {v}");
        let (s, _, _) = call(M::GET, &format!("{base}/cases/{}", case.case_id), None).await;
        assert_eq!(s, 404, "{q}: nothing stored");
    }
}

/// What `sdx validate` says about a whole message whose forward is `forward` (a JSON text): its first code.
fn validate_code(forward: &str) -> String {
    let m = sample::typical_forward();
    let whole = sdx_codec::json::encode(&m);
    let v: Value = serde_json::from_str(&whole).unwrap();
    let placeholder = "\"__FORWARD__\"";
    let mut v2 = v.clone();
    v2["body"]["forward"] = json!("__FORWARD__");
    let text = v2.to_string().replace(placeholder, forward);
    sdx_codec::validate(text.as_bytes()).unwrap_err()[0].code.to_string()
}

async fn post_raw(url: &str, body: String) -> (u16, Value) {
    let r = client()
        .post(url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    (status, serde_json::from_slice(&r.bytes().await.unwrap()).unwrap())
}

/// Documents posted to the local API are decoded and checked as `sdx validate` checks a message: each broken
/// document is refused with the code `sdx validate` gives for the same content, the JSON pointer in the detail,
/// and nothing is stored.
#[tokio::test]
async fn documents_are_refused_as_sdx_validate_refuses_them() {
    let (base, _dir) = start().await;
    // The sample case, as in the sample forward that `validate_code` puts the edited forward into.
    let case = sample::typical_case();
    let id = case.case_id;
    let forward = json!({"case": case, "note": "Bitte prüfen"});
    type Edit = Box<dyn Fn(&Value) -> String>;
    let deep = format!("{}\"x\"{}", "[".repeat(40), "]".repeat(40));
    let cases: Vec<(&str, Edit, u16, &str, &str)> = vec![
        (
            "positional array for an object",
            Box::new(|f: &Value| {
                let mut f = f.clone();
                let cat = f["case"]["category"].take();
                f["case"]["category"] = Value::Array(cat.as_object().unwrap().values().cloned().collect());
                f.to_string()
            }),
            400,
            "schemaViolation",
            "/case/category",
        ),
        (
            "duplicate key",
            Box::new(|f: &Value| f.to_string().replacen("\"revision\":1", "\"revision\":1,\"revision\":1", 1)),
            400,
            "duplicateKey",
            "",
        ),
        (
            "unknown member",
            Box::new(|f: &Value| {
                let mut f = f.clone();
                f["case"]["colour"] = json!("red");
                f.to_string()
            }),
            400,
            "schemaViolation",
            "/case/colour",
        ),
        (
            "too deep",
            Box::new(move |f: &Value| {
                let mut f = f.clone();
                f["case"]["description"] = json!("__DEEP__");
                f.to_string().replace("\"__DEEP__\"", &deep)
            }),
            400,
            "tooDeep",
            "",
        ),
        (
            "unknown code value",
            Box::new(|f: &Value| {
                let mut f = f.clone();
                f["case"]["status"] = json!("open");
                f.to_string()
            }),
            400,
            "unknownCode",
            "/case/status",
        ),
        (
            "invalid identifier",
            Box::new(|f: &Value| {
                let mut f = f.clone();
                f["case"]["region"] = json!("1234");
                f.to_string()
            }),
            400,
            "invalidIdentifier",
            "/case/region",
        ),
        (
            "rule beyond the schema",
            Box::new(|f: &Value| {
                let mut f = f.clone();
                f["case"]["priority"] = json!("low");
                f.to_string()
            }),
            422,
            "priorityMismatch",
            "/case/priority",
        ),
    ];
    for (what, edit, status, code, pointer) in cases {
        let body = edit(&forward);
        assert_eq!(validate_code(&body), code, "{what}: sdx validate gives the same code");
        let (s, v) = post_raw(&format!("{base}/cases"), body).await;
        assert_eq!((s, v["errorCode"].as_str()), (status, Some(code)), "{what}: {v}");
        assert_eq!(v["type"], format!("urn:xoev-de:sdx:problem:{code}"), "{what}");
        assert_eq!(v["retryable"], false, "{what}");
        assert!(v["detail"].as_str().unwrap().contains(pointer), "{what}: the pointer in {v}");
        let (s, _, _) = call(reqwest::Method::GET, &format!("{base}/cases/{id}"), None).await;
        assert_eq!(s, 404, "{what}: nothing stored");
    }
    let (_, v, _) = call(reqwest::Method::GET, &format!("{base}/cases"), None).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 0, "nothing stored: {v}");

    // A change: the same decoder for the message body.
    let (s, _, _) = call(reqwest::Method::POST, &format!("{base}/cases"), Some(forward.clone())).await;
    assert_eq!(s, 201);
    let url = format!("{base}/cases/{id}/changes");
    for (body, status, code) in [
        ("{\"close\": [0]}".to_string(), 400, "schemaViolation"),
        ("{\"close\": {\"revision\": 0, \"revision\": 0}}".to_string(), 400, "duplicateKey"),
        ("{\"close\": {\"revision\": 0, \"colour\": 1}}".to_string(), 400, "schemaViolation"),
        ("{\"close\": {\"revision\": 0, \"closureCode\": \"x\"}}".to_string(), 400, "unknownCode"),
        // Two members: what the codec says of a message body with two members.
        ("{\"close\": {\"revision\": 0}, \"update\": {\"revision\": 0}}".to_string(), 400, "malformed"),
        ("[{\"close\": {\"revision\": 0}}]".to_string(), 400, "malformed"),
        ("{\"close\": {\"revision\": 0, \"note\": \"\"}}".to_string(), 422, "schemaViolation"),
        ("{\"close\"".to_string(), 400, "malformed"),
    ] {
        let (s, v) = post_raw(&url, body.clone()).await;
        assert_eq!((s, v["errorCode"].as_str()), (status, Some(code)), "{body}: {v}");
    }
    let (_, v, _) = call(reqwest::Method::GET, &format!("{base}/cases/{id}"), None).await;
    assert_eq!(v["case"]["revision"], 1, "no change stored: {v}");
    // Not JSON: 415.
    let r = client().post(format!("{base}/cases")).bearer_auth(TOKEN).body(forward.to_string()).send().await.unwrap();
    assert_eq!(r.status(), 415);
}

/// Every HTTP error is the one problem shape: unknown routes, wrong methods, bad parameters, missing tokens.
#[tokio::test]
async fn every_error_is_a_problem_with_a_stable_code() {
    let (base, _dir) = start().await;
    let root = base.trim_end_matches("/api/v1").to_string();
    for (method, url, token, status, code) in [
        ("GET", format!("{root}/nowhere"), true, 404, "schemaViolation"),
        ("DELETE", format!("{base}/cases"), true, 405, "schemaViolation"),
        ("GET", format!("{base}/cases?limit=0"), true, 400, "schemaViolation"),
        ("GET", format!("{base}/cases?limit=501"), true, 400, "schemaViolation"),
        ("GET", format!("{base}/deliveries?limit=0"), true, 400, "schemaViolation"),
        ("GET", format!("{base}/cases?updatedSince=1969-12-31T23:59:59Z"), true, 400, "invalidTimestamp"),
        ("GET", format!("{base}/cases?partner="), true, 400, "invalidIdentifier"),
        ("GET", format!("{base}/cases?cursor=zz"), true, 400, "schemaViolation"),
        ("GET", format!("{base}/cases/not-a-uuid"), true, 400, "invalidIdentifier"),
        ("GET", format!("{base}/cases"), false, 401, "unknownSender"),
    ] {
        let mut rq = client().request(method.parse().unwrap(), &url);
        if token {
            rq = rq.bearer_auth(TOKEN);
        }
        let r = rq.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {url}");
        assert_eq!(r.headers()["content-type"], "application/problem+json", "{method} {url}");
        if status == 405 {
            assert!(r.headers().contains_key("allow"), "{url}: Allow");
        }
        if status == 401 {
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
        }
        let v: Value = r.json().await.unwrap();
        assert_eq!((v["status"].as_u64(), v["errorCode"].as_str()), (Some(status as u64), Some(code)), "{url}: {v}");
        assert_eq!(v["retryable"], false);
    }
    // In range: accepted.
    for q in ["limit=1", "limit=500", "updatedSince=1970-01-01T00:00:00Z"] {
        let (s, v, _) = call(reqwest::Method::GET, &format!("{base}/cases?{q}"), None).await;
        assert_eq!(s, 200, "{q}: {v}");
    }
    // The document the node serves is the one `sdx openapi` prints.
    let r = client().get(format!("{base}/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), sdx_node::openapi::document());
}

/// A peer that refuses everything for good (as a peer that does not know us answers).
struct Refusing;

impl sdx_node::engine::Transport for Refusing {
    async fn post(&self, _: &Peer, _: &str) -> Result<Vec<u8>, sdx_node::engine::TransportError> {
        Err(sdx_node::engine::TransportError::from_answer(403, br#"{"errorCode":"unknownSender","detail":"who?"}"#))
    }
}

/// A dead letter shows as a blocked case with its reason; the operator can retry it; a forward cannot be skipped.
#[tokio::test]
async fn blocked_cases_are_listed_and_resolved_by_retry() {
    let (base, _dir, engine) = start_with_engine().await;
    use reqwest::Method as M;
    let mut case = sample::typical_case();
    case.case_id = CaseId::new_random();
    let (s, v, _) = call(M::POST, &format!("{base}/cases"), Some(json!({"case": case}))).await;
    assert_eq!(s, 201, "{v}");
    let forward = v["messageId"].as_str().unwrap().to_string();
    assert_eq!(engine.deliver_due(&Refusing, 10).await.unwrap(), 0);
    let (s, v, _) = call(M::GET, &format!("{base}/blocked"), None).await;
    assert_eq!(s, 200, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{v}");
    assert_eq!(
        (items[0]["caseId"].as_str(), items[0]["messageId"].as_str()),
        (Some(case.case_id.to_string().as_str()), Some(forward.as_str()))
    );
    assert!(items[0]["lastError"].as_str().unwrap().contains("403 unknownSender"), "{v}");
    let (s, v, _) = call(M::GET, &format!("{base}/deliveries?state=dead"), None).await;
    assert_eq!((s, v["items"].as_array().map(Vec::len)), (200, Some(1)));
    for state in ["rejected", "skipped", "superseded"] {
        let (s, _, _) = call(M::GET, &format!("{base}/deliveries?state={state}"), None).await;
        assert_eq!(s, 200, "{state}");
    }
    // The case's timeline says it is blocked.
    let (_, v, _) = call(M::GET, &format!("{base}/cases/{}", case.case_id), None).await;
    assert!(v["timeline"].as_array().unwrap().iter().any(|e| e["kind"] == "blocked"), "{v}");
    // A forward cannot be skipped; unknown and malformed ids.
    let (s, v, _) = call(M::POST, &format!("{base}/deliveries/{forward}/skip"), None).await;
    assert_eq!((s, v["errorCode"].as_str()), (403, Some("notPermitted")), "{v}");
    let (s, v, _) = call(M::POST, &format!("{base}/deliveries/{}/skip", MessageId::new_random()), None).await;
    assert_eq!((s, v["errorCode"].as_str()), (404, Some("unknownCase")), "{v}");
    let (s, v, _) = call(M::POST, &format!("{base}/deliveries/nope/skip"), None).await;
    assert_eq!((s, v["errorCode"].as_str()), (400, Some("invalidIdentifier")), "{v}");
    // Retry: pending again, no longer blocked.
    let (s, v, _) = call(M::POST, &format!("{base}/deliveries/{forward}/retry"), None).await;
    assert_eq!((s, v["state"].as_str()), (200, Some("pending")), "{v}");
    let (_, v, _) = call(M::GET, &format!("{base}/blocked"), None).await;
    assert_eq!(v["items"].as_array().map(Vec::len), Some(0), "{v}");
    let (s, _, _) = call(M::GET, &format!("{base}/blocked?limit=0"), None).await;
    assert_eq!(s, 400);
}

/// POST with an `Idempotency-Key`; (status, body, `Idempotent-Replayed` header).
async fn post_keyed(url: &str, key: &str, body: Value) -> (u16, Value, Option<String>) {
    let r = client().post(url).bearer_auth(TOKEN).header("Idempotency-Key", key).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let replayed = r.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap().to_string());
    (status, r.json().await.unwrap_or(Value::Null), replayed)
}

#[tokio::test]
async fn a_change_sent_again_with_its_idempotency_key_is_applied_once() {
    let (base, _dir, engine) = start_with_engine().await;
    let mut case = sample::typical_case();
    case.case_id = CaseId::new_random();
    let id = case.case_id;
    // Create twice with one key: one case, one forward, the same message id; the second is marked.
    let (s1, v1, r1) = post_keyed(&format!("{base}/cases"), "otobo:ticket:7", json!({"case": case})).await;
    let (s2, v2, r2) = post_keyed(&format!("{base}/cases"), "otobo:ticket:7", json!({"case": case})).await;
    assert_eq!((s1, s2), (201, 201), "{v1} {v2}");
    assert_eq!((r1, r2.as_deref()), (None, Some("true")));
    assert_eq!(v1["messageId"], v2["messageId"]);
    // A change twice with one key: applied once (a journal entry id may be used only once, so a second
    // application would be refused with duplicateId; here the answer repeats the first).
    let entry = json!({"id": ItemId::new_random(), "visibility": "public",
        "author": {"organisation": MILA}, "createdAt": "2026-11-30T10:00:00Z", "text": "Nachtrag."});
    let change = json!({"update": {"revision": 0, "journal": [entry]}});
    let url = format!("{base}/cases/{id}/changes");
    let (s1, v1, r1) = post_keyed(&url, "otobo:article:12", change.clone()).await;
    let (s2, v2, r2) = post_keyed(&url, "otobo:article:12", change.clone()).await;
    assert_eq!((s1, s2, r1, r2.as_deref()), (200, 200, None, Some("true")), "{v1} {v2}");
    assert_eq!(v1["messageId"], v2["messageId"]);
    assert_eq!(v2["case"]["journal"], v1["case"]["journal"], "not applied twice");
    // Without the key the same change is applied again and refused (the entry exists): the key made the difference.
    let (s, v, _) = call(reqwest::Method::POST, &url, Some(change)).await;
    assert_eq!((s, v["errorCode"].as_str()), (409, Some("duplicateId")), "{v}");
    let msgs = engine.store().list_deliveries(None, 100).await.unwrap();
    assert_eq!(msgs.len(), 2, "one forward and one update in the outbox");
    // A bad key is refused before anything happens.
    for bad in ["", "mit leerzeichen", &"x".repeat(201)] {
        let (s, v, _) = post_keyed(&url, bad, json!({"close": {"revision": 0}})).await;
        assert_eq!((s, v["errorCode"].as_str()), (400, Some("schemaViolation")), "{bad:?}: {v}");
    }
}

#[tokio::test]
async fn the_change_feed_lists_every_change_in_order_and_waits_for_the_next() {
    let (base, _dir) = start().await;
    use reqwest::Method as M;
    let (s, v, _) = call(M::GET, &format!("{base}/events"), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["events"], json!([]));
    let start = v["next"].as_str().unwrap().to_string();

    let mut case = sample::typical_case();
    case.case_id = CaseId::new_random();
    assert_eq!(call(M::POST, &format!("{base}/cases"), Some(json!({"case": case}))).await.0, 201);
    let (_, v, _) = call(M::GET, &format!("{base}/events?after={start}"), None).await;
    let events = v["events"].as_array().unwrap();
    assert!(!events.is_empty(), "{v}");
    assert!(events.iter().all(|e| e["caseId"] == case.case_id.to_string()));
    assert_eq!(events[0]["kind"], "messageSent");
    let next = v["next"].as_str().unwrap().to_string();
    assert_eq!(events.last().unwrap()["cursor"], next);

    // Nothing new: a long poll waits, and answers as soon as a change is committed.
    let waiting = tokio::spawn({
        let url = format!("{base}/events?after={next}&wait=20");
        async move {
            let t = std::time::Instant::now();
            let (_, v, _) = call(M::GET, &url, None).await;
            (v, t.elapsed())
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the long poll waits while there is nothing");
    let entry = json!({"id": ItemId::new_random(), "visibility": "public",
        "author": {"organisation": MILA}, "createdAt": "2026-11-30T10:00:00Z", "text": "Nachtrag."});
    let url = format!("{base}/cases/{}/changes", case.case_id);
    assert_eq!(call(M::POST, &url, Some(json!({"update": {"revision": 0, "journal": [entry]}}))).await.0, 200);
    let (v, took) = waiting.await.unwrap();
    assert!(took < std::time::Duration::from_secs(10), "answered when the change came, after {took:?}");
    assert_eq!(v["events"].as_array().unwrap().len(), 1, "{v}");
    assert_ne!(v["next"], json!(next));
    // wait=0 answers at once; bad parameters are refused.
    let (_, v, _) = call(M::GET, &format!("{base}/events?after={}&wait=0", v["next"].as_str().unwrap()), None).await;
    assert_eq!(v["events"], json!([]));
    for bad in ["after=abc", "after=1", "wait=61", "limit=0", "limit=501", "since=1"] {
        let (s, v, _) = call(M::GET, &format!("{base}/events?{bad}"), None).await;
        assert_eq!((s, v["errorCode"].as_str()), (400, Some("schemaViolation")), "{bad}: {v}");
    }
    let (_, v, _) = call(M::GET, &format!("{base}/events?limit=1"), None).await;
    assert_eq!(v["events"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn connector_state_is_kept_with_compare_and_set() {
    let (base, _dir) = start().await;
    use reqwest::Method as M;
    let url = format!("{base}/connectors/otobo/state/ticket:42");
    let (s, v, _) = call(M::GET, &url, None).await;
    assert_eq!((s, v["errorCode"].as_str()), (404, Some("unknownCase")));
    let link = json!({"caseId": CaseId::new_random(), "base": {"status": "open"}});
    let (s, v, _) = call(M::PUT, &url, Some(json!({"value": link, "expectedVersion": 0}))).await;
    assert_eq!((s, v["version"].as_u64()), (200, Some(1)), "{v}");
    let (s, v, _) = call(M::PUT, &url, Some(json!({"value": 1, "expectedVersion": 0}))).await;
    assert_eq!((s, v["errorCode"].as_str()), (409, Some("inconsistentCase")), "{v}");
    let (s, v, _) = call(M::GET, &url, None).await;
    assert_eq!((s, &v["value"], v["version"].as_u64()), (200, &link, Some(1)));
    let (s, v, _) = call(M::PUT, &url, Some(json!({"value": "x"}))).await;
    assert_eq!((s, v["version"].as_u64()), (200, Some(2)));
    // Another connector's key of the same name is separate.
    let (s, _, _) = call(M::GET, &format!("{base}/connectors/rt/state/ticket:42"), None).await;
    assert_eq!(s, 404);
    // Delete: wrong version refused; right version deletes; deleting again succeeds.
    let (s, _, _) = call(M::DELETE, &format!("{url}?expectedVersion=1"), None).await;
    assert_eq!(s, 409);
    assert_eq!(call(M::DELETE, &format!("{url}?expectedVersion=2"), None).await.0, 204);
    assert_eq!(call(M::DELETE, &url, None).await.0, 204);
    assert_eq!(call(M::GET, &url, None).await.0, 404);
    // Bad names, keys and bodies.
    for (u, body) in [
        (format!("{base}/connectors/ot%20obo/state/k"), json!({"value": 1})),
        (format!("{base}/connectors/otobo/state/a%2Fb"), json!({"value": 1})),
        (url.clone(), json!({"wert": 1})),
        (url.clone(), json!({"value": 1, "expectedVersion": -1})),
        (url.clone(), json!({"value": 1, "expectedVersion": 9_007_199_254_740_992_u64})),
    ] {
        let (s, v, _) = call(M::PUT, &u, Some(body)).await;
        assert_eq!((s, v["errorCode"].as_str()), (400, Some("schemaViolation")), "{u}: {v}");
    }
    let big = json!({"value": "x".repeat(70_000)});
    assert_eq!(call(M::PUT, &url, Some(big)).await.0, 413);
}

#[tokio::test]
async fn a_problem_report_lands_in_the_timeline_and_the_feed() {
    let (base, _dir) = start().await;
    use reqwest::Method as M;
    let mut case = sample::typical_case();
    case.case_id = CaseId::new_random();
    assert_eq!(call(M::POST, &format!("{base}/cases"), Some(json!({"case": case}))).await.0, 201);
    let url = format!("{base}/cases/{}/reports", case.case_id);
    let (s, v, _) =
        call(M::POST, &url, Some(json!({"detail": "connector otobo: no mapping for status `merged`"}))).await;
    assert_eq!(s, 204, "{v}");
    let (_, v, _) = call(M::GET, &format!("{base}/cases/{}", case.case_id), None).await;
    let reported: Vec<&Value> = v["timeline"].as_array().unwrap().iter().filter(|e| e["kind"] == "reported").collect();
    assert_eq!(reported.len(), 1, "{v}");
    assert_eq!(reported[0]["detail"], "connector otobo: no mapping for status `merged`");
    let (_, v, _) = call(M::GET, &format!("{base}/events"), None).await;
    assert!(v["events"].as_array().unwrap().iter().any(|e| e["kind"] == "reported"), "{v}");
    for (body, status, code) in [
        (json!({"detail": ""}), 400, "schemaViolation"),
        (json!({"detail": "x".repeat(501)}), 400, "schemaViolation"),
        (json!({"detail": "x", "more": 1}), 400, "schemaViolation"),
        (json!(["x"]), 400, "schemaViolation"),
    ] {
        let (s, v, _) = call(M::POST, &url, Some(body.clone())).await;
        assert_eq!((s, v["errorCode"].as_str()), (status, Some(code)), "{body}: {v}");
    }
    let other = format!("{base}/cases/{}/reports", CaseId::new_random());
    assert_eq!(call(M::POST, &other, Some(json!({"detail": "x"}))).await.0, 404);
}
