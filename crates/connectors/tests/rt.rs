//! The Request Tracker connector against a real RT 5 (started or reused by `scripts/ticketsystems/rt-start.sh`).
//!
//! Every test makes its own tickets (unique titles and case ids), so they run in parallel in one process.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use sdx_connectors::secret::Secret;
use sdx_connectors::system::{
    Contact, NewComment, NewFile, NewTicket, SystemError, Ticket, TicketChange, TicketSystem,
};
use sdx_connectors::systems::SystemConfig;
use sdx_connectors::systems::rt::{Config, Rt};
use time::OffsetDateTime;

/// The env file's values and a client for them.
fn setup() -> (BTreeMap<String, String>, Rt) {
    let env = support::system("rt");
    let config = Config {
        url: env["RT_URL"].clone(),
        token: Secret::new(env["RT_TOKEN"].clone()),
        case_field: env["RT_CASE_FIELD"].clone(),
        max_file_bytes: Some(env["RT_MAX_FILE_BYTES"].parse().expect("RT_MAX_FILE_BYTES")),
        priorities: None,
    };
    (env.clone(), Rt::new(config).expect("client"))
}

fn case_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn new_ticket(env: &BTreeMap<String, String>, title: &str, case: &str) -> NewTicket {
    NewTicket {
        title: title.to_string(),
        description: "Die Antragstellerin kann keine Nachweise hochladen. Grüße ✓\nZeile 2".into(),
        status: "new".into(),
        priority: Some("Medium".into()),
        queue: env["RT_QUEUE"].clone(),
        kind: None,
        requester: Some(Contact {
            name: Some("Erika Müller".into()),
            email: Some(format!("erika.{}@example.org", &case[case.len() - 12..])),
        }),
        fields: BTreeMap::from([(env["RT_CASE_FIELD"].clone(), case.to_string())]),
    }
}

/// A ticket made for one test; returns its id and the case id in its field.
async fn make(env: &BTreeMap<String, String>, rt: &Rt, prefix: &str) -> (String, String) {
    let case = case_id();
    let id = rt.create(&new_ticket(env, &support::unique(prefix), &case)).await.expect("create");
    (id, case)
}

fn status(s: &str) -> TicketChange {
    TicketChange { status: Some(s.into()), ..TicketChange::default() }
}

#[tokio::test]
async fn create_and_get_round_trip() {
    let (env, rt) = setup();
    let case = case_id();
    let title = support::unique("Wohngeld: Hochladen schlägt fehl ✓ —");
    let new = new_ticket(&env, &title, &case);
    let before = OffsetDateTime::now_utc() - Duration::from_secs(1);
    let id = rt.create(&new).await.unwrap();
    let t = rt.get(&id).await.unwrap();
    assert_eq!(t.id, id);
    assert_eq!(t.number, id);
    assert_eq!(t.title, title);
    assert_eq!(t.description, new.description);
    assert_eq!(t.status, "new");
    assert_eq!(t.priority.as_deref(), Some("Medium"));
    assert_eq!(t.queue.as_deref(), Some(env["RT_QUEUE"].as_str()));
    assert_eq!(t.kind, None);
    let r = t.requester.clone().expect("requester");
    assert_eq!(r.email, new.requester.as_ref().unwrap().email);
    assert_eq!(r.name.as_deref(), Some("Erika Müller"));
    assert_eq!(t.fields.get(&env["RT_CASE_FIELD"]), Some(&case));
    assert!(t.comments.is_empty(), "the description is not a comment: {:?}", t.comments);
    assert!(t.created_at >= before && t.updated_at >= t.created_at);
    assert_eq!(rt.kind(), "rt");
}

#[tokio::test]
async fn create_with_a_status_new_tickets_cannot_have() {
    let (env, rt) = setup();
    let mut new = new_ticket(&env, &support::unique("stalled at birth"), &case_id());
    new.status = "stalled".into();
    new.priority = Some("High".into());
    new.queue = "SDX".into();
    let id = rt.create(&new).await.unwrap();
    let t = rt.get(&id).await.unwrap();
    assert_eq!((t.status.as_str(), t.priority.as_deref(), t.queue.as_deref()), ("stalled", Some("High"), Some("SDX")));
}

#[tokio::test]
async fn create_refused_before_writing() {
    let (env, rt) = setup();
    let case = case_id();
    let field = env["RT_CASE_FIELD"].clone();
    let base = new_ticket(&env, &support::unique("refused create"), &case);

    let bogus = NewTicket { status: "bogus".into(), ..base.clone() };
    assert!(matches!(rt.create(&bogus).await, Err(SystemError::Refused { .. })));
    let prio = NewTicket { priority: Some("Urgent".into()), ..base.clone() };
    assert!(matches!(rt.create(&prio).await, Err(SystemError::Refused { .. })));
    let queue = NewTicket { queue: "No Such Queue".into(), ..base.clone() };
    assert!(matches!(rt.create(&queue).await, Err(SystemError::Refused { .. })));
    let kind = NewTicket { kind: Some("Incident".into()), ..base.clone() };
    assert!(matches!(rt.create(&kind).await, Err(SystemError::Refused { .. })));
    let mut unknown = base.clone();
    unknown.fields.insert("No Such Field".into(), "x".into());
    assert!(matches!(rt.create(&unknown).await, Err(SystemError::Refused { .. })));
    // RT cuts subjects at 200 bytes: a longer one is refused before writing.
    let long = NewTicket { title: "Ä".repeat(101), ..base.clone() };
    match rt.create(&long).await {
        Err(SystemError::TooLarge { size: 202, limit: 200, .. }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(rt.find_by_field(&field, &case).await.unwrap(), None, "a refused create wrote a ticket");
}

#[tokio::test]
async fn find_by_field() {
    let (env, rt) = setup();
    let field = env["RT_CASE_FIELD"].clone();
    let (id, case) = make(&env, &rt, "find me").await;
    assert_eq!(rt.find_by_field(&field, &case).await.unwrap(), Some(id));
    assert_eq!(rt.find_by_field(&field, &case_id()).await.unwrap(), None);
    assert_eq!(rt.find_by_field(&field, "it's \\ 'quoted'").await.unwrap(), None);
}

#[tokio::test]
async fn update_with_read_back() {
    let (env, rt) = setup();
    let field = env["RT_CASE_FIELD"].clone();
    let (id, _) = make(&env, &rt, "update").await;
    let other_case = case_id();
    rt.update(
        &id,
        &TicketChange {
            status: Some("open".into()),
            priority: Some("High".into()),
            queue: Some("SDX".into()),
            kind: None,
            fields: BTreeMap::from([(field.clone(), other_case.clone())]),
        },
    )
    .await
    .unwrap();
    let t = rt.get(&id).await.unwrap();
    assert_eq!(t.status, "open");
    assert_eq!(t.priority.as_deref(), Some("High"));
    assert_eq!(t.queue.as_deref(), Some("SDX"));
    assert_eq!(t.fields.get(&field), Some(&other_case));
    assert_eq!(rt.find_by_field(&field, &other_case).await.unwrap(), Some(id.clone()));

    rt.update(&id, &TicketChange { priority: Some("Low".into()), queue: Some("General".into()), ..Default::default() })
        .await
        .unwrap();
    let t = rt.get(&id).await.unwrap();
    assert_eq!((t.priority.as_deref(), t.queue.as_deref()), (Some("Low"), Some("General")));
    // Nothing to change: fine; RT has no ticket types.
    rt.update(&id, &TicketChange::default()).await.unwrap();
    let kind = TicketChange { kind: Some("Incident".into()), ..Default::default() };
    assert!(matches!(rt.update(&id, &kind).await, Err(SystemError::Refused { .. })));
    // The multi-step path of the lifecycle: closed only after resolved.
    rt.update(&id, &status("resolved")).await.unwrap();
    rt.update(&id, &status("closed")).await.unwrap();
    assert_eq!(rt.get(&id).await.unwrap().status, "closed");
    rt.update(&id, &status("open")).await.unwrap();
}

/// The status and everything an update could touch, to see that a refused one changed nothing.
fn snapshot(t: &Ticket) -> (String, Option<String>, Option<String>, BTreeMap<String, String>, usize) {
    (t.status.clone(), t.priority.clone(), t.queue.clone(), t.fields.clone(), t.comments.len())
}

#[tokio::test]
async fn refused_status_changes_nothing() {
    let (env, rt) = setup();
    let (id, _) = make(&env, &rt, "refused status").await;
    let before = snapshot(&rt.get(&id).await.unwrap());
    // new -> closed is not a transition; deleted needs DeleteTicket; bogus is no status.
    for s in ["closed", "deleted", "bogus"] {
        match rt.update(&id, &status(s)).await {
            Err(SystemError::Refused { detail, .. }) => assert!(detail.contains("status"), "{s}: {detail}"),
            other => panic!("{s}: expected Refused, got {other:?}"),
        }
        assert_eq!(snapshot(&rt.get(&id).await.unwrap()), before, "{s} changed the ticket");
    }
    // An unknown priority (RT would set 0 = Low without a word) and an unknown field.
    let prio = TicketChange { priority: Some("Urgent".into()), ..Default::default() };
    assert!(matches!(rt.update(&id, &prio).await, Err(SystemError::Refused { .. })));
    let field = TicketChange { fields: BTreeMap::from([("No Such Field".into(), "x".into())]), ..Default::default() };
    assert!(matches!(rt.update(&id, &field).await, Err(SystemError::Refused { .. })));
    let queue = TicketChange { queue: Some("No Such Queue".into()), ..Default::default() };
    assert!(matches!(rt.update(&id, &queue).await, Err(SystemError::Refused { .. })));
    assert_eq!(snapshot(&rt.get(&id).await.unwrap()), before);
}

#[tokio::test]
async fn missing_tickets() {
    let (_, rt) = setup();
    for id in ["999999999", "abc", "../1", ""] {
        assert!(matches!(rt.get(id).await, Err(SystemError::NotFound { .. })), "{id}");
    }
    assert!(matches!(rt.update("999999999", &status("open")).await, Err(SystemError::NotFound { .. })));
    let c = NewComment { public: false, text: "x".into(), files: Vec::new() };
    assert!(matches!(rt.comment("999999999", &c).await, Err(SystemError::NotFound { .. })));
}

#[tokio::test]
async fn comments_round_trip() {
    let (env, rt) = setup();
    let (id, _) = make(&env, &rt, "comments").await;
    let marker = format!("[sdx:{}/3]", case_id());
    let public = format!("Wir prüfen das ✓.\n{marker}\n  eingerückt\tTab\n\nEnde");
    let internal = format!("Intern: Log prüfen.\n[sdx:{}/4]", case_id());
    let p = rt.comment(&id, &NewComment { public: true, text: public.clone(), files: Vec::new() }).await.unwrap();
    let i = rt.comment(&id, &NewComment { public: false, text: internal.clone(), files: Vec::new() }).await.unwrap();
    let t = rt.get(&id).await.unwrap();
    assert_eq!(t.comments.len(), 2, "{:?}", t.comments);
    let (cp, ci) = (&t.comments[0], &t.comments[1]);
    assert_eq!((cp.id.as_str(), cp.public, cp.text.as_str()), (p.as_str(), true, public.as_str()));
    assert_eq!((ci.id.as_str(), ci.public, ci.text.as_str()), (i.as_str(), false, internal.as_str()));
    assert!(cp.text.contains(&marker));
    assert_eq!(cp.author.as_deref(), Some(env["RT_API_USER"].as_str()));
    assert!(cp.created_at <= ci.created_at && cp.files.is_empty());
    assert!(t.description.starts_with("Die Antragstellerin"), "the description stays apart");
    // CRLF comes back as LF: the marker line is still found verbatim.
    let crlf = format!("eins\r\n{marker}\r\nzwei");
    let c = rt.comment(&id, &NewComment { public: true, text: crlf, files: Vec::new() }).await.unwrap();
    let t = rt.get(&id).await.unwrap();
    let back = t.comments.iter().find(|x| x.id == c).expect("third comment");
    assert_eq!(back.text, format!("eins\n{marker}\nzwei"));
    let empty = NewComment { public: true, text: String::new(), files: Vec::new() };
    assert!(matches!(rt.comment(&id, &empty).await, Err(SystemError::Refused { .. })));
}

#[tokio::test]
async fn files_round_trip() {
    let (env, rt) = setup();
    let (id, _) = make(&env, &rt, "files").await;
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let files = vec![
        NewFile { name: "alle Bytes.bin".into(), media_type: "application/octet-stream".into(), content: binary },
        NewFile {
            name: "Grüße ✓ \"x\".txt".into(), media_type: "text/plain".into(), content: "Grüße\r\n✓\n".into()
        },
        // Latin-1 bytes declared as text: RT would re-encode them, so they travel as octet-stream.
        NewFile { name: "latin1.txt".into(), media_type: "text/plain".into(), content: b"Gr\xfc\xdfe\n".to_vec() },
        NewFile {
            name: "nachweis.pdf".into(),
            media_type: "application/pdf".into(),
            content: b"%PDF-1.4\n%\xe2\xe3\n".to_vec(),
        },
    ];
    let text = format!("Anbei die Nachweise.\n[sdx:{}/7]", case_id());
    let cid = rt.comment(&id, &NewComment { public: true, text: text.clone(), files: files.clone() }).await.unwrap();
    let t = rt.get(&id).await.unwrap();
    let c = t.comments.iter().find(|c| c.id == cid).expect("the comment");
    assert_eq!(c.text, text);
    assert_eq!(c.files.len(), files.len(), "{:?}", c.files);
    for f in &files {
        let info = c.files.iter().find(|i| i.name == f.name).unwrap_or_else(|| panic!("{} missing", f.name));
        assert_eq!(info.size, f.content.len() as u64, "{}", f.name);
        assert_eq!(rt.download(&id, info).await.unwrap(), f.content, "{}", f.name);
    }
    let media = |n: &str| c.files.iter().find(|i| i.name == n).map(|i| i.media_type.clone());
    assert_eq!(media("nachweis.pdf").as_deref(), Some("application/pdf"));
    assert_eq!(media("Grüße ✓ \"x\".txt").as_deref(), Some("text/plain"));
    // A file of another ticket is not downloadable through this one.
    let (other, _) = make(&env, &rt, "files other").await;
    let info = &c.files[0];
    assert!(matches!(rt.download(&other, info).await, Err(SystemError::NotFound { .. })));
}

#[tokio::test]
async fn file_above_the_limit_is_too_large_and_writes_nothing() {
    let (env, rt) = setup();
    let limit: u64 = env["RT_MAX_FILE_BYTES"].parse().unwrap();
    let (id, _) = make(&env, &rt, "too large").await;
    let before = rt.get(&id).await.unwrap();
    let big = NewFile {
        name: "big.bin".into(),
        media_type: "application/octet-stream".into(),
        content: vec![7; limit as usize + 1],
    };
    let small = NewFile { name: "small.txt".into(), media_type: "text/plain".into(), content: b"ok".to_vec() };
    let c = NewComment { public: true, text: "mit Anhang".into(), files: vec![small, big] };
    match rt.comment(&id, &c).await {
        Err(SystemError::TooLarge { size, limit: l, what, .. }) => {
            assert_eq!((size, l), (limit + 1, limit));
            assert!(what.contains("big.bin"));
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let text = NewComment { public: false, text: "x".repeat(limit as usize + 1), files: Vec::new() };
    assert!(matches!(rt.comment(&id, &text).await, Err(SystemError::TooLarge { .. })));
    let after = rt.get(&id).await.unwrap();
    assert_eq!(after.comments.len(), before.comments.len());
    assert_eq!(after.updated_at, before.updated_at, "nothing was written");
    // Exactly at the limit is taken.
    let exact = NewFile {
        name: "exact.bin".into(),
        media_type: "application/octet-stream".into(),
        content: vec![1; limit as usize],
    };
    let cid = rt.comment(&id, &NewComment { public: false, text: String::new(), files: vec![exact] }).await.unwrap();
    let t = rt.get(&id).await.unwrap();
    let c = t.comments.iter().find(|c| c.id == cid).unwrap();
    assert_eq!(c.files[0].size, limit);
    assert!(!c.public);
}

#[tokio::test]
async fn changed_since_sees_a_comment_and_is_inclusive() {
    let (env, rt) = setup();
    let (id, _) = make(&env, &rt, "changed since").await;
    // Let a second pass, so that the comment is the only change at or after `since`.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let since = OffsetDateTime::now_utc();
    let created = rt.get(&id).await.unwrap().updated_at;
    assert!(created < since.replace_nanosecond(0).unwrap(), "created {created}, since {since}");
    assert!(!rt.changed_since(since).await.unwrap().contains(&id), "nothing changed yet");
    rt.comment(&id, &NewComment { public: false, text: "nur ein Kommentar".into(), files: Vec::new() }).await.unwrap();
    assert!(rt.changed_since(since).await.unwrap().contains(&id), "a comment is a change");
    let updated = rt.get(&id).await.unwrap().updated_at;
    assert!(updated >= since.replace_nanosecond(0).unwrap());
    assert!(rt.changed_since(updated).await.unwrap().contains(&id), "inclusive to the second");
    assert!(!rt.changed_since(updated + Duration::from_secs(1)).await.unwrap().contains(&id));
    // A time in another offset means the same instant.
    let elsewhere = updated.to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
    assert!(rt.changed_since(elsewhere).await.unwrap().contains(&id));
}

#[tokio::test]
async fn wrong_credentials_are_auth() {
    let (env, _) = setup();
    for token in ["1-27-00000000000000000000000000000000", "nonsense", ""] {
        let rt = Rt::new(Config {
            url: env["RT_URL"].clone(),
            token: Secret::new(token),
            case_field: env["RT_CASE_FIELD"].clone(),
            max_file_bytes: None,
            priorities: None,
        })
        .unwrap();
        assert!(matches!(rt.vocabulary().await, Err(SystemError::Auth { .. })), "{token}");
        assert!(matches!(rt.get("1").await, Err(SystemError::Auth { .. })), "{token}");
        assert!(matches!(rt.changed_since(OffsetDateTime::now_utc()).await, Err(SystemError::Auth { .. })));
    }
}

#[tokio::test]
async fn closed_port_is_unavailable() {
    // A port nothing listens on: bind, take the number, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let rt = Rt::new(Config {
        url: format!("http://127.0.0.1:{port}"),
        token: Secret::new("1-1-x"),
        case_field: "SDX Case".into(),
        max_file_bytes: None,
        priorities: None,
    })
    .unwrap();
    let e = rt.get("1").await.unwrap_err();
    assert!(matches!(e, SystemError::Unavailable { .. }) && e.is_transient(), "{e:?}");
    assert!(matches!(rt.vocabulary().await, Err(SystemError::Unavailable { .. })));
    assert!(matches!(rt.changed_since(OffsetDateTime::now_utc()).await, Err(SystemError::Unavailable { .. })));
}

#[tokio::test]
async fn vocabulary_lists_what_the_start_script_set_up() {
    let (env, rt) = setup();
    let v = rt.vocabulary().await.unwrap();
    for s in ["new", "open", "stalled", "resolved", "closed", "rejected"] {
        assert!(v.statuses.iter().any(|x| x == s), "status {s} in {:?}", v.statuses);
    }
    assert_eq!(v.priorities, ["Low", "Medium", "High"]);
    for q in env["RT_QUEUES"].split(',') {
        assert!(v.queues.iter().any(|x| x == q), "queue {q} in {:?}", v.queues);
    }
    assert!(v.fields.contains(&env["RT_CASE_FIELD"]), "{:?}", v.fields);
    assert!(v.kinds.is_empty());
    assert_eq!(v.max_file_bytes, Some(env["RT_MAX_FILE_BYTES"].parse().unwrap()));
    assert_eq!(v.max_title_chars, Some(50));
}

#[test]
fn config_from_toml() {
    let c: Config = toml::from_str("url = \"http://127.0.0.1:9080\"\ntoken = \"1-2-abc\"\n").unwrap();
    assert_eq!(c.case_field, "SDX Case");
    assert_eq!(c.max_file_bytes, None);
    assert!(!format!("{c:?}").contains("abc"), "the token is never printed");
    assert!(toml::from_str::<Config>("url = \"x\"\ntoken = \"t\"\npassword = \"p\"\n").is_err());
    // As a connector file's `[system]` table names it.
    let s: SystemConfig = toml::from_str(
        "system = \"rt\"\nurl = \"http://127.0.0.1:9080\"\ntoken = \"1-2-abc\"\ncase_field = \"SDX Case\"\nmax_file_bytes = 5\n",
    )
    .unwrap();
    assert_eq!(s.case_field(), "SDX Case");
    assert!(matches!(&s, SystemConfig::Rt(c) if c.max_file_bytes == Some(5)));
}

#[tokio::test]
async fn an_html_reply_from_the_web_ui_is_text() {
    let (env, rt) = setup();
    let (id, _) = make(&env, &rt, "html reply").await;
    // What RT's rich-text editor sends: an HTML body only.
    let marker = format!("[sdx:{}/9]", case_id());
    let html = format!("<p>Hallo <b>Welt</b> &amp; Gr&uuml;&szlig;e</p>\n<p>{marker}<br />\nZeile&nbsp;2</p>");
    let resp = reqwest::Client::new()
        .post(format!("{}/REST/2.0/ticket/{id}/correspond", env["RT_URL"]))
        .header("Authorization", format!("token {}", env["RT_TOKEN"]))
        .json(&serde_json::json!({"Content": html, "ContentType": "text/html"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let t = rt.get(&id).await.unwrap();
    let c = t.comments.last().expect("the reply");
    assert!(c.public);
    assert_eq!(c.text, format!("Hallo Welt & Grüße\n{marker}\nZeile 2"));
}

#[tokio::test]
async fn a_long_history_is_read_over_several_pages() {
    let (env, rt) = setup();
    let (id, _) = make(&env, &rt, "long history").await;
    // 105 comments written straight through REST2 (RT pages collections by 100 at most).
    let http = reqwest::Client::new();
    let url = format!("{}/REST/2.0/ticket/{id}/comment", env["RT_URL"]);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..105 {
        let (http, url, token) = (http.clone(), url.clone(), env["RT_TOKEN"].clone());
        tasks.spawn(async move {
            http.post(url)
                .header("Authorization", format!("token {token}"))
                .json(&serde_json::json!({"Content": format!("Nummer {n}"), "ContentType": "text/plain"}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
        while tasks.len() >= 4 {
            assert_eq!(tasks.join_next().await.unwrap().unwrap().unwrap(), 201);
        }
    }
    while let Some(r) = tasks.join_next().await {
        assert_eq!(r.unwrap().unwrap(), 201);
    }
    let t = rt.get(&id).await.unwrap();
    assert_eq!(t.comments.len(), 105);
    let mut texts: Vec<String> = t.comments.iter().map(|c| c.text.clone()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 105, "every comment once, each with its own text");
    assert!(t.comments.iter().all(|c| !c.public));
}

#[tokio::test]
async fn rts_own_limit_is_caught_by_the_read_back() {
    // A client that believes in a larger limit than RT's: RT drops the file (DropLongAttachments, set by the
    // start script instead of truncating), and the read-back says so.
    let (env, rt) = setup();
    let limit: u64 = env["RT_MAX_FILE_BYTES"].parse().unwrap();
    let (id, _) = make(&env, &rt, "rt drops").await;
    let trusting = Rt::new(Config {
        url: env["RT_URL"].clone(),
        token: Secret::new(env["RT_TOKEN"].clone()),
        case_field: env["RT_CASE_FIELD"].clone(),
        max_file_bytes: Some(limit * 2),
        priorities: None,
    })
    .unwrap();
    let big = NewFile {
        name: "big.bin".into(),
        media_type: "application/octet-stream".into(),
        content: vec![3; limit as usize + 1],
    };
    let c = NewComment { public: false, text: "zu groß".into(), files: vec![big] };
    match trusting.comment(&id, &c).await {
        Err(SystemError::Refused { detail, .. }) => assert!(detail.contains("big.bin"), "{detail}"),
        other => panic!("expected Refused, got {other:?}"),
    }
    let t = rt.get(&id).await.unwrap();
    let note = t.comments.iter().find(|c| c.text == "zu groß").expect("the comment was written");
    // What RT keeps instead: `big.bin.txt` saying so (with the original Content-Length).
    assert!(!note.files.iter().any(|f| f.name == "big.bin"), "{:?}", note.files);
    let kept = note.files.iter().find(|f| f.name == "big.bin.txt").expect("RT's note");
    assert_eq!(rt.download(&id, kept).await.unwrap(), b"Large attachment dropped");

    // A `.txt` file keeps its name when dropped: RT's AttachmentDrop record still gives it away.
    let txt = NewFile {
        name: "big.txt".into(),
        media_type: "application/octet-stream".into(),
        content: vec![b'x'; limit as usize + 1],
    };
    let c = NewComment { public: false, text: "noch einmal".into(), files: vec![txt] };
    match trusting.comment(&id, &c).await {
        Err(SystemError::Refused { detail, .. }) => assert!(detail.contains("AttachmentDrop"), "{detail}"),
        other => panic!("expected Refused, got {other:?}"),
    }
}
