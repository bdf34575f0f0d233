//! The Redmine connector against a real Redmine 5 (started or reused by `scripts/ticketsystems/redmine-start.sh`).
//!
//! The API user `sdx-api` has the default role Developer: its workflow allows, per tracker, New / In Progress /
//! Resolved / Feedback → In Progress / Resolved / Feedback / Closed, and nothing else.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use sdx_connectors::secret::Secret;
use sdx_connectors::system::{
    Contact, FileInfo, NewComment, NewFile, NewTicket, SystemError, Ticket, TicketChange, TicketSystem,
};
use sdx_connectors::systems::redmine::{Config, Redmine};
use sdx_connectors::systems::{AnySystem, SystemConfig};
use time::OffsetDateTime;

fn env() -> BTreeMap<String, String> {
    support::system("redmine")
}

fn config(env: &BTreeMap<String, String>) -> Config {
    Config {
        url: env["REDMINE_URL"].clone(),
        api_key: Secret::new(env["REDMINE_API_KEY"].clone()),
        project: env["REDMINE_PROJECT"].clone(),
        case_field: env["REDMINE_CASE_FIELD"].clone(),
        case_field_id: None,
        requester_field: env["REDMINE_REQUESTER_FIELD"].clone(),
        max_file_bytes: Some(env["REDMINE_MAX_FILE_BYTES"].parse().expect("REDMINE_MAX_FILE_BYTES")),
        allow_internal_files: false,
    }
}

fn client() -> (Redmine, BTreeMap<String, String>) {
    let env = env();
    (Redmine::new(config(&env)).expect("client"), env)
}

fn new_ticket(env: &BTreeMap<String, String>, title: &str) -> NewTicket {
    NewTicket {
        title: title.to_string(),
        description: "Der Drucker im 2. OG brennt. 🔥\nBitte sofort löschen.\n".into(),
        status: "New".into(),
        priority: Some("Normal".into()),
        queue: env["REDMINE_PROJECT"].clone(),
        kind: Some("Support".into()),
        requester: None,
        fields: BTreeMap::from([(env["REDMINE_CASE_FIELD"].clone(), uuid::Uuid::now_v7().to_string())]),
    }
}

async fn create(rm: &Redmine, env: &BTreeMap<String, String>, title: &str) -> (String, Ticket) {
    let id = rm.create(&new_ticket(env, title)).await.expect("create");
    let t = rm.get(&id).await.expect("get");
    (id, t)
}

/// A raw call with the admin key (to look behind the connector).
async fn admin_get(env: &BTreeMap<String, String>, path: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{}{path}", env["REDMINE_URL"]))
        .header("X-Redmine-API-Key", &env["REDMINE_ADMIN_KEY"])
        .send()
        .await
        .expect("admin call")
        .json()
        .await
        .expect("admin JSON")
}

#[tokio::test]
async fn create_and_get_round_trip() {
    let (rm, env) = client();
    let title = support::unique("Straßenlaterne defekt – Ünïcödé ✓");
    let case = format!("case-{}", uuid::Uuid::now_v7());
    let requester = Contact { name: Some("Jörg Müller".into()), email: Some("joerg.mueller@example.org".into()) };
    let description = "Zeile 1\nZeile 2 mit Leerzeichen am Ende   \n\n[sdx:0192-abc/1]\n";
    let id = rm
        .create(&NewTicket {
            title: title.clone(),
            description: description.into(),
            status: "New".into(),
            priority: Some("High".into()),
            queue: env["REDMINE_PROJECT"].clone(),
            kind: Some("Feature".into()),
            requester: Some(requester.clone()),
            fields: BTreeMap::from([(env["REDMINE_CASE_FIELD"].clone(), case.clone())]),
        })
        .await
        .expect("create");
    let t = rm.get(&id).await.expect("get");
    assert_eq!(t.id, id);
    assert_eq!(t.number, id);
    assert_eq!(t.title, title);
    assert_eq!(t.description, description, "description comes back verbatim (Redmine stores \\r\\n)");
    assert_eq!(t.status, "New");
    assert_eq!(t.priority.as_deref(), Some("High"));
    assert_eq!(t.queue.as_deref(), Some(env["REDMINE_PROJECT"].as_str()));
    assert_eq!(t.kind.as_deref(), Some("Feature"));
    assert_eq!(t.requester, Some(requester));
    assert_eq!(t.fields, BTreeMap::from([(env["REDMINE_CASE_FIELD"].clone(), case)]));
    assert!(t.comments.is_empty());
    assert!(t.updated_at >= t.created_at);
    assert!((OffsetDateTime::now_utc() - t.created_at).whole_seconds().abs() < 120, "created_at is now");

    // Without a requester field value the author is the requester.
    let mut plain = new_ticket(&env, &support::unique("no requester"));
    plain.queue = String::new(); // the configured project
    plain.kind = None;
    let id2 = rm.create(&plain).await.expect("create without queue");
    let t2 = rm.get(&id2).await.expect("get");
    assert_eq!(t2.queue.as_deref(), Some(env["REDMINE_PROJECT"].as_str()));
    assert_eq!(t2.requester.and_then(|c| c.name).as_deref(), Some("SDX Connector"));
    assert!(t2.kind.is_some());
}

#[tokio::test]
async fn create_in_a_status_other_than_new() {
    let (rm, env) = client();
    let mut nt = new_ticket(&env, &support::unique("created in progress"));
    nt.status = "In Progress".into();
    nt.queue = env["REDMINE_PROJECT2"].clone();
    let id = rm.create(&nt).await.expect("create In Progress (two writes: Redmine starts every issue as New)");
    let t = rm.get(&id).await.expect("get");
    assert_eq!(t.status, "In Progress");
    assert_eq!(t.queue.as_deref(), Some(env["REDMINE_PROJECT2"].as_str()));

    // Rejected cannot be reached by the Developer role: the issue exists (New) and create says Refused.
    let mut nt = new_ticket(&env, &support::unique("created rejected"));
    nt.status = "Rejected".into();
    let case = nt.fields.values().next().cloned().expect("case");
    let err = rm.create(&nt).await.expect_err("Rejected is refused");
    assert!(matches!(err, SystemError::Refused { .. }), "{err:?}");
    let left = rm.find_by_field(&env["REDMINE_CASE_FIELD"], &case).await.expect("find").expect("the issue exists");
    assert_eq!(rm.get(&left).await.expect("get").status, "New");
    assert!(err.to_string().contains(&left), "the error names the issue: {err}");
}

#[tokio::test]
async fn create_refuses_unknown_names_and_long_titles_before_writing() {
    let (rm, env) = client();
    for (what, nt) in [
        ("status", NewTicket { status: "Bogus".into(), ..new_ticket(&env, &support::unique("bad status")) }),
        ("priority", NewTicket { priority: Some("Bogus".into()), ..new_ticket(&env, &support::unique("bad prio")) }),
        ("queue", NewTicket { queue: "no-such-project".into(), ..new_ticket(&env, &support::unique("bad queue")) }),
        ("kind", NewTicket { kind: Some("Bogus".into()), ..new_ticket(&env, &support::unique("bad kind")) }),
        ("field", {
            let mut nt = new_ticket(&env, &support::unique("bad field"));
            let case = nt.fields.values().next().cloned().expect("case");
            nt.fields.insert("No Such Field".into(), case);
            nt
        }),
    ] {
        let case = nt.fields[&env["REDMINE_CASE_FIELD"]].clone();
        let err = rm.create(&nt).await.expect_err(what);
        assert!(matches!(err, SystemError::Refused { .. }), "{what}: {err:?}");
        assert_eq!(rm.find_by_field(&env["REDMINE_CASE_FIELD"], &case).await.expect("find"), None, "{what}");
    }
    let mut nt = new_ticket(&env, &"ä".repeat(256));
    let case = nt.fields[&env["REDMINE_CASE_FIELD"]].clone();
    let err = rm.create(&nt).await.expect_err("256 characters");
    assert!(matches!(err, SystemError::TooLarge { size: 256, limit: 255, .. }), "{err:?}");
    assert_eq!(rm.find_by_field(&env["REDMINE_CASE_FIELD"], &case).await.expect("find"), None);
    nt.title = "ä".repeat(255);
    rm.create(&nt).await.expect("255 characters are fine");
}

#[tokio::test]
async fn find_by_field() {
    let (rm, env) = client();
    let field = env["REDMINE_CASE_FIELD"].clone();
    // Characters that Redmine's short filter syntax would read as operators or value separators.
    let case = format!("!~|{}", uuid::Uuid::now_v7());
    let mut nt = new_ticket(&env, &support::unique("find me"));
    nt.fields.insert(field.clone(), case.clone());
    let id = rm.create(&nt).await.expect("create");
    assert_eq!(rm.find_by_field(&field, &case).await.expect("find"), Some(id.clone()));
    assert_eq!(rm.find_by_field(&field, &case[1..]).await.expect("find"), None, "exact match only");
    assert_eq!(rm.find_by_field(&field, &case.to_uppercase()).await.expect("find"), None);
    let err = rm.find_by_field("No Such Field", "x").await.expect_err("unknown field");
    assert!(matches!(err, SystemError::Refused { .. }), "{err:?}");

    // Closed issues are found too (issues.json lists open ones only unless told otherwise).
    rm.update(&id, &TicketChange { status: Some("Closed".into()), ..Default::default() }).await.expect("close");
    assert_eq!(rm.find_by_field(&field, &case).await.expect("find"), Some(id.clone()));

    // A field name the API user cannot resolve can be given by id.
    let cfs = admin_get(&env, "/custom_fields.json").await;
    let cf_id = cfs["custom_fields"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == field.as_str()))
        .and_then(|c| c["id"].as_u64())
        .expect("case field id");
    let mut cfg = config(&env);
    cfg.case_field = "Renamed Case".into();
    cfg.case_field_id = Some(cf_id);
    let rm2 = Redmine::new(cfg).expect("client");
    assert_eq!(rm2.find_by_field("Renamed Case", &case).await.expect("find by id"), Some(id));
}

#[tokio::test]
async fn update_with_read_back() {
    let (rm, env) = client();
    let (id, before) = create(&rm, &env, &support::unique("update me")).await;
    let case2 = format!("case-{}", uuid::Uuid::now_v7());
    rm.update(
        &id,
        &TicketChange {
            status: Some("In Progress".into()),
            priority: Some("Urgent".into()),
            queue: Some(env["REDMINE_PROJECT2"].clone()),
            kind: Some("Bug".into()),
            fields: BTreeMap::from([(env["REDMINE_CASE_FIELD"].clone(), case2.clone())]),
        },
    )
    .await
    .expect("update");
    let t = rm.get(&id).await.expect("get");
    assert_eq!(t.status, "In Progress");
    assert_eq!(t.priority.as_deref(), Some("Urgent"));
    assert_eq!(t.queue.as_deref(), Some(env["REDMINE_PROJECT2"].as_str()));
    assert_eq!(t.kind.as_deref(), Some("Bug"));
    assert_eq!(t.fields[&env["REDMINE_CASE_FIELD"]], case2);
    assert_eq!(t.title, before.title);
    assert_eq!(t.description, before.description);
    assert!(t.comments.is_empty(), "field changes are no comments");

    // Multi-step through the workflow, then back to a project.
    for s in ["Resolved", "Feedback", "Closed"] {
        rm.update(&id, &TicketChange { status: Some(s.into()), ..Default::default() }).await.expect(s);
        assert_eq!(rm.get(&id).await.expect("get").status, s);
    }
    rm.update(&id, &TicketChange { queue: Some(env["REDMINE_PROJECT"].clone()), ..Default::default() })
        .await
        .expect("move back");
    assert_eq!(rm.get(&id).await.expect("get").queue.as_deref(), Some(env["REDMINE_PROJECT"].as_str()));

    rm.update(&id, &TicketChange::default()).await.expect("an empty change");
    let err = rm.update("999999999", &TicketChange::default()).await.expect_err("no such issue");
    assert!(matches!(err, SystemError::NotFound { .. }), "{err:?}");
    let err = rm.get("999999999").await.expect_err("no such issue");
    assert!(matches!(err, SystemError::NotFound { .. }), "{err:?}");
    let err = rm.get("../projects").await.expect_err("not an id");
    assert!(matches!(err, SystemError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn refused_status_changes_nothing() {
    let (rm, env) = client();
    let (id, _) = create(&rm, &env, &support::unique("refuse me")).await;

    // Redmine itself answers 204 to a status its workflow refuses and keeps the old one.
    let http = reqwest::Client::new();
    let resp = http
        .put(format!("{}/issues/{id}.json", env["REDMINE_URL"]))
        .header("X-Redmine-API-Key", &env["REDMINE_API_KEY"])
        .json(&serde_json::json!({"issue": {"status_id": 6}}))
        .send()
        .await
        .expect("raw PUT");
    assert_eq!(resp.status().as_u16(), 204, "Redmine accepts the refused write silently");
    let before = rm.get(&id).await.expect("get");
    assert_eq!(before.status, "New");

    for (status, why) in [("Rejected", "not in the Developer workflow"), ("Bogus", "no such status")] {
        let err = rm
            .update(
                &id,
                &TicketChange { status: Some(status.into()), priority: Some("Immediate".into()), ..Default::default() },
            )
            .await
            .expect_err(why);
        assert!(matches!(err, SystemError::Refused { .. }), "{status}: {err:?}");
        let t = rm.get(&id).await.expect("get");
        assert_eq!(t.status, "New", "{status}");
        assert_eq!(t.priority, before.priority, "{status}: the priority of the same change is not written either");
        assert_eq!(t.updated_at, before.updated_at, "{status}: nothing was written");
    }

    // Closed cannot be left by a Developer; New cannot be reached again.
    rm.update(&id, &TicketChange { status: Some("In Progress".into()), ..Default::default() }).await.expect("start");
    let err =
        rm.update(&id, &TicketChange { status: Some("New".into()), ..Default::default() }).await.expect_err("New");
    assert!(matches!(err, SystemError::Refused { .. }), "{err:?}");
    rm.update(&id, &TicketChange { status: Some("Closed".into()), ..Default::default() }).await.expect("close");
    let err = rm
        .update(&id, &TicketChange { status: Some("In Progress".into()), ..Default::default() })
        .await
        .expect_err("reopen");
    assert!(matches!(err, SystemError::Refused { .. }), "{err:?}");
    assert_eq!(rm.get(&id).await.expect("get").status, "Closed");
}

#[tokio::test]
async fn public_and_internal_comments_round_trip() {
    let (rm, env) = client();
    let (id, _) = create(&rm, &env, &support::unique("comment me")).await;
    let marker = format!("[sdx:{}/3]", uuid::Uuid::now_v7());
    let public_text = format!("Guten Tag,\n\nwir kümmern uns darum.  \n{marker}\n— Ihr Bürgeramt 🏛️");
    let internal_text = format!("  intern: Hausmeister anrufen\r\n{marker}-i\n");
    let c1 =
        rm.comment(&id, &NewComment { public: true, text: public_text.clone(), files: vec![] }).await.expect("public");
    let c2 = rm
        .comment(&id, &NewComment { public: false, text: internal_text.clone(), files: vec![] })
        .await
        .expect("internal");
    assert_ne!(c1, c2);
    let t = rm.get(&id).await.expect("get");
    assert_eq!(t.comments.len(), 2, "{:?}", t.comments.iter().map(|c| &c.id).collect::<Vec<_>>());
    let (a, b) = (&t.comments[0], &t.comments[1]);
    assert_eq!((a.id.as_str(), a.public), (c1.as_str(), true));
    assert_eq!(a.text, public_text);
    assert!(a.text.contains(&marker));
    assert_eq!((b.id.as_str(), b.public), (c2.as_str(), false));
    assert_eq!(b.text, internal_text.replace("\r\n", "\n"), "line ends come back as \\n");
    assert!(b.text.contains(&format!("{marker}-i")));
    assert_eq!(a.author.as_deref(), Some("SDX Connector"));
    assert!(b.created_at >= a.created_at);
    assert!(t.description.starts_with("Der Drucker"), "the description is not a comment");

    let err =
        rm.comment(&id, &NewComment { public: true, text: String::new(), files: vec![] }).await.expect_err("empty");
    assert!(matches!(err, SystemError::Refused { .. }), "{err:?}");
    let err = rm
        .comment("999999999", &NewComment { public: true, text: "x".into(), files: vec![] })
        .await
        .expect_err("no issue");
    assert!(matches!(err, SystemError::NotFound { .. }), "{err:?}");
    assert_eq!(rm.get(&id).await.expect("get").comments.len(), 2);
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[tokio::test]
async fn files_round_trip() {
    let (rm, env) = client();
    let (id, _) = create(&rm, &env, &support::unique("files")).await;
    let pdf =
        NewFile { name: "Bescheid März.pdf".into(), media_type: "application/pdf".into(), content: bytes(70_000, 7) };
    let txt =
        NewFile { name: "notiz.txt".into(), media_type: "text/plain".into(), content: b"hallo\r\n\0ende".to_vec() };
    let empty = NewFile { name: "leer.bin".into(), media_type: "application/octet-stream".into(), content: vec![] };
    let cid = rm
        .comment(
            &id,
            &NewComment {
                public: true,
                text: "Anbei der Bescheid.".into(),
                files: vec![pdf.clone(), txt.clone(), empty.clone()],
            },
        )
        .await
        .expect("comment with files");
    let t = rm.get(&id).await.expect("get");
    let c = t.comments.iter().find(|c| c.id == cid).expect("the comment");
    assert_eq!(c.text, "Anbei der Bescheid.");
    assert_eq!(c.files.len(), 3);
    for (sent, got) in [&pdf, &txt, &empty].into_iter().zip(&c.files) {
        assert_eq!(got.name, sent.name);
        assert_eq!(got.media_type, sent.media_type);
        assert_eq!(got.size, sent.content.len() as u64);
        assert_eq!(rm.download(&id, got).await.expect("download"), sent.content, "{}", sent.name);
    }

    // A comment of files only.
    let cid2 = rm
        .comment(&id, &NewComment { public: true, text: String::new(), files: vec![txt.clone()] })
        .await
        .expect("files only");
    let t = rm.get(&id).await.expect("get");
    let c2 = t.comments.iter().find(|c| c.id == cid2).expect("files-only comment");
    assert_eq!((c2.text.as_str(), c2.files.len()), ("", 1));

    // Internal files would be visible to everyone who sees the issue: refused unless allowed.
    let secret = NewFile { name: "intern.txt".into(), media_type: "text/plain".into(), content: b"intern".to_vec() };
    let internal = NewComment { public: false, text: "intern mit Datei".into(), files: vec![secret.clone()] };
    let err = rm.comment(&id, &internal).await.expect_err("internal files");
    assert!(matches!(err, SystemError::Refused { .. }), "{err:?}");
    assert_eq!(rm.get(&id).await.expect("get").comments.len(), 2, "nothing written");
    let mut cfg = config(&env);
    cfg.allow_internal_files = true;
    let rm2 = Redmine::new(cfg).expect("client");
    let cid3 = rm2.comment(&id, &internal).await.expect("internal files allowed");
    let t = rm2.get(&id).await.expect("get");
    assert_eq!(t.comments.len(), 3, "Redmine's split journal is merged into the internal comment");
    let c3 = t.comments.iter().find(|c| c.id == cid3).expect("internal comment");
    assert!(!c3.public);
    assert_eq!(c3.files.len(), 1);
    assert_eq!(rm2.download(&id, &c3.files[0]).await.expect("download"), secret.content);

    // A file of another issue is not downloaded through this one.
    let (other, _) = create(&rm, &env, &support::unique("other")).await;
    let err = rm.download(&other, &c.files[0]).await.expect_err("foreign file");
    assert!(matches!(err, SystemError::Refused { .. }), "{err:?}");
    let bogus = FileInfo { id: "999999999".into(), name: "x".into(), media_type: "x/y".into(), size: 1 };
    assert!(rm.download(&id, &bogus).await.is_err());
}

#[tokio::test]
async fn file_above_the_limit_is_too_large_and_writes_nothing() {
    let (rm, env) = client();
    let limit: usize = env["REDMINE_MAX_FILE_BYTES"].parse().expect("limit");
    let (id, before) = create(&rm, &env, &support::unique("too large")).await;
    let small = NewFile { name: "ok.txt".into(), media_type: "text/plain".into(), content: b"ok".to_vec() };
    let big = NewFile {
        name: "big.bin".into(),
        media_type: "application/octet-stream".into(),
        content: vec![0x5a; limit + 1],
    };
    let err = rm
        .comment(&id, &NewComment { public: true, text: "zu groß".into(), files: vec![small, big.clone()] })
        .await
        .expect_err("too large");
    match err {
        SystemError::TooLarge { size, limit: l, .. } => assert_eq!((size, l), (limit as u64 + 1, limit as u64)),
        other => panic!("{other:?}"),
    }
    let t = rm.get(&id).await.expect("get");
    assert!(t.comments.is_empty());
    assert_eq!(t.updated_at, before.updated_at);

    // Redmine's own limit is the same: it refuses the upload with 422, and takes exactly the limit.
    let http = reqwest::Client::new();
    let upload = |content: Vec<u8>| {
        http.post(format!("{}/uploads.json?filename=x.bin", env["REDMINE_URL"]))
            .header("X-Redmine-API-Key", &env["REDMINE_API_KEY"])
            .header("Content-Type", "application/octet-stream")
            .body(content)
            .send()
    };
    assert_eq!(upload(big.content).await.expect("raw upload").status().as_u16(), 422);
    let max =
        NewFile { name: "max.bin".into(), media_type: "application/octet-stream".into(), content: bytes(limit, 3) };
    let cid = rm
        .comment(&id, &NewComment { public: true, text: "genau".into(), files: vec![max.clone()] })
        .await
        .expect("at the limit");
    let t = rm.get(&id).await.expect("get");
    let c = t.comments.iter().find(|c| c.id == cid).expect("comment");
    assert_eq!(rm.download(&id, &c.files[0]).await.expect("download"), max.content);
}

#[tokio::test]
async fn changed_since_sees_a_new_comment_and_is_inclusive() {
    let (rm, env) = client();
    let (id, t0) = create(&rm, &env, &support::unique("changed")).await;
    assert!(rm.changed_since(t0.updated_at).await.expect("changed").contains(&id), "inclusive at creation");
    // Redmine asks `updated_on > since - 1 s` of sub-second timestamps: a change in the second before `since`
    // is listed too (harmless, the caller de-duplicates). Two seconds later the ticket is not listed.
    let next = t0.updated_at + time::Duration::seconds(2);
    while OffsetDateTime::now_utc() < next + time::Duration::milliseconds(50) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!rm.changed_since(next).await.expect("changed").contains(&id), "not changed since");
    rm.comment(&id, &NewComment { public: false, text: "nur ein Kommentar".into(), files: vec![] })
        .await
        .expect("comment");
    let t1 = rm.get(&id).await.expect("get");
    assert!(t1.updated_at >= next, "a note touches updated_on");
    assert_eq!(t1.comments.len(), 1);
    let ids = rm.changed_since(next).await.expect("changed");
    assert!(ids.contains(&id), "a ticket whose only change is a comment");
    assert!(rm.changed_since(t1.updated_at).await.expect("changed").contains(&id), "inclusive, same second");
    // Sub-second parts of `since` do not skip a change in that second.
    let mid = t1.updated_at + time::Duration::milliseconds(900);
    assert!(rm.changed_since(mid).await.expect("changed").contains(&id));
}

#[tokio::test]
async fn changed_since_pages_and_includes_closed() {
    let (rm, env) = client();
    let start = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let (id, _) = create(&rm, &env, &support::unique("closed change")).await;
    rm.update(&id, &TicketChange { status: Some("Closed".into()), ..Default::default() }).await.expect("close");
    let all = rm.changed_since(OffsetDateTime::UNIX_EPOCH).await.expect("everything");
    assert!(all.contains(&id));
    let mut dedup = all.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), all.len(), "no duplicates");
    assert!(rm.changed_since(start).await.expect("changed").contains(&id));
}

#[tokio::test]
async fn wrong_credentials_are_auth() {
    let env = env();
    let mut cfg = config(&env);
    cfg.api_key = Secret::new("0000000000000000000000000000000000000000");
    let rm = Redmine::new(cfg).expect("client");
    for r in [
        rm.vocabulary().await.map(|_| ()),
        rm.get("1").await.map(|_| ()),
        rm.changed_since(OffsetDateTime::now_utc()).await.map(|_| ()),
        rm.create(&new_ticket(&env, "never")).await.map(|_| ()),
    ] {
        let err = r.expect_err("bad key");
        assert!(matches!(err, SystemError::Auth { .. }), "{err:?}");
        assert!(!err.to_string().contains("0000000000"), "the key is not in the message");
    }
    assert!(!format!("{:?}", config(&env)).contains(&env["REDMINE_API_KEY"]), "Debug hides the key");
}

#[tokio::test]
async fn closed_port_is_unavailable() {
    let env = env();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut cfg = config(&env);
    cfg.url = format!("http://127.0.0.1:{port}");
    let rm = Redmine::new(cfg).expect("client");
    let err = rm.get("1").await.expect_err("closed port");
    assert!(matches!(err, SystemError::Unavailable { .. }), "{err:?}");
    assert!(err.is_transient());
    let err = rm.vocabulary().await.expect_err("closed port");
    assert!(matches!(err, SystemError::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn vocabulary_lists_what_the_start_script_set_up() {
    let (rm, env) = client();
    let v = rm.vocabulary().await.expect("vocabulary");
    assert_eq!(v.statuses, ["New", "In Progress", "Resolved", "Feedback", "Closed", "Rejected"]);
    assert_eq!(v.priorities, ["Low", "Normal", "High", "Urgent", "Immediate"]);
    assert_eq!(v.kinds, ["Bug", "Feature", "Support"]);
    assert!(
        v.queues.contains(&env["REDMINE_PROJECT"]) && v.queues.contains(&env["REDMINE_PROJECT2"]),
        "{:?}",
        v.queues
    );
    assert!(v.fields.contains(&env["REDMINE_CASE_FIELD"]), "{:?}", v.fields);
    assert!(v.fields.contains(&env["REDMINE_REQUESTER_FIELD"]), "{:?}", v.fields);
    assert_eq!(v.max_file_bytes, Some(env["REDMINE_MAX_FILE_BYTES"].parse().expect("limit")));
    assert_eq!(v.max_title_chars, Some(255));
    // The limit the script set is Redmine's setting.
    let settings_limit = env["REDMINE_MAX_FILE_BYTES"].parse::<u64>().expect("limit");
    assert_eq!(settings_limit % 1024, 0);
}

#[tokio::test]
async fn config_from_settings() {
    let env = env();
    let toml = format!(
        "system = \"redmine\"\nurl = \"{}\"\napi_key = \"{}\"\nproject = \"{}\"\n",
        env["REDMINE_URL"], env["REDMINE_API_KEY"], env["REDMINE_PROJECT"]
    );
    let cfg: SystemConfig = toml::from_str(&toml).expect("settings");
    assert_eq!(cfg.case_field(), "SDX Case", "default case field");
    let sys = AnySystem::new(&cfg).expect("client");
    assert_eq!(sys.kind(), "redmine");
    assert!(sys.vocabulary().await.expect("vocabulary").kinds.contains(&"Support".to_string()));
    assert!(toml::from_str::<SystemConfig>(&format!("{toml}secret = \"x\"\n")).is_err(), "unknown keys are refused");
}

#[tokio::test]
async fn an_issue_the_user_cannot_see_is_not_found() {
    let (rm, env) = client();
    let http = reqwest::Client::new();
    let admin = |m: reqwest::Method, path: &str, body: serde_json::Value| {
        http.request(m, format!("{}{path}", env["REDMINE_URL"]))
            .header("X-Redmine-API-Key", &env["REDMINE_ADMIN_KEY"])
            .json(&body)
            .send()
    };
    // A project the API user is not a member of (422 when it exists already).
    let project =
        serde_json::json!({"project": {"name": "SDX Hidden", "identifier": "sdx-hidden", "is_public": false}});
    let status = admin(reqwest::Method::POST, "/projects.json", project).await.expect("project").status().as_u16();
    assert!(status == 201 || status == 422, "{status}");
    let since = OffsetDateTime::now_utc();
    let issue = serde_json::json!({"issue": {"project_id": "sdx-hidden", "subject": support::unique("hidden")}});
    let created: serde_json::Value =
        admin(reqwest::Method::POST, "/issues.json", issue).await.expect("issue").json().await.expect("JSON");
    let id = created["issue"]["id"].as_u64().expect("id").to_string();
    let err = rm.get(&id).await.expect_err("hidden");
    assert!(matches!(err, SystemError::NotFound { .. }), "{err:?}");
    let change = TicketChange { priority: Some("High".into()), ..Default::default() };
    let err = rm.update(&id, &change).await.expect_err("hidden");
    assert!(matches!(err, SystemError::NotFound { .. }), "{err:?}");
    let err = rm.comment(&id, &NewComment { public: true, text: "x".into(), files: vec![] }).await.expect_err("hidden");
    assert!(matches!(err, SystemError::NotFound { .. }), "{err:?}");
    assert!(!rm.changed_since(since).await.expect("changed").contains(&id));
    let v = rm.vocabulary().await.expect("vocabulary");
    assert!(!v.queues.contains(&"sdx-hidden".to_string()));
}
