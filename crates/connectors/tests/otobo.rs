//! The OTOBO connector against a real OTOBO 11, started (or reused) by `scripts/ticketsystems/otobo-start.sh`.
//! Every test makes its own tickets (unique titles and case ids), so they run in parallel.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use sdx_connectors::secret::Secret;
use sdx_connectors::system::{Contact, NewComment, NewFile, NewTicket, SystemError, TicketChange, TicketSystem};
use sdx_connectors::systems::otobo::{Config, Otobo};
use time::OffsetDateTime;

fn config() -> Config {
    let env = support::system("otobo");
    Config {
        url: env["OTOBO_URL"].clone(),
        user: env["OTOBO_USER"].clone(),
        password: Secret::new(env["OTOBO_PASSWORD"].clone()),
        case_field: env["OTOBO_CASE_FIELD"].clone(),
        max_file_bytes: env.get("OTOBO_MAX_FILE_BYTES").and_then(|v| v.parse().ok()),
    }
}

fn client() -> Otobo {
    Otobo::new(config()).expect("client")
}

fn env(key: &str) -> String {
    support::system("otobo")[key].clone()
}

fn case_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A ticket in the writable queue with the case field set; returns (id, case id).
async fn new_ticket(o: &Otobo, prefix: &str) -> (String, String) {
    let case = case_id();
    let t = NewTicket {
        title: support::unique(prefix),
        description: "Beschreibung: Drucker im 3. OG druckt nicht.".into(),
        status: "new".into(),
        priority: Some("3 normal".into()),
        queue: env("OTOBO_QUEUE"),
        kind: None,
        requester: Some(Contact { name: Some("Erika Mustermann".into()), email: Some("erika@example.org".into()) }),
        fields: BTreeMap::from([(env("OTOBO_CASE_FIELD"), case.clone())]),
    };
    (o.create(&t).await.expect("create"), case)
}

#[tokio::test]
async fn create_and_get_round_trip() {
    let o = client();
    let field = env("OTOBO_CASE_FIELD");
    let case = case_id();
    let title = support::unique("Straßenlaterne defekt – Größe ÄÖÜ ✓ 日本");
    let description = "Sehr geehrte Damen und Herren,\n\n  die Laterne vor Hausnr. 7 flackert (≈ 3 Hz).\nGrüße 🙂";
    let requester =
        Contact { name: Some("Jürgen \"Q\" Çelik, Dr.".into()), email: Some("j.celik@example.org".into()) };
    let new = NewTicket {
        title: title.clone(),
        description: description.into(),
        status: "new".into(),
        priority: Some("2 low".into()),
        queue: env("OTOBO_QUEUE"),
        kind: Some("Incident".into()),
        requester: Some(requester.clone()),
        fields: BTreeMap::from([(field.clone(), case.clone())]),
    };
    let before = OffsetDateTime::now_utc() - Duration::from_secs(2);
    let id = o.create(&new).await.expect("create");
    let t = o.get(&id).await.expect("get");
    assert_eq!(t.id, id);
    assert!(!t.number.is_empty() && t.number != id, "the ticket number is not the id: {}", t.number);
    assert_eq!(t.title, title);
    assert_eq!(t.description, description);
    assert_eq!(t.status, "new");
    assert_eq!(t.priority.as_deref(), Some("2 low"));
    assert_eq!(t.queue.as_deref(), Some(env("OTOBO_QUEUE").as_str()));
    assert_eq!(t.kind.as_deref(), Some("Incident"));
    assert_eq!(t.requester, Some(requester));
    assert_eq!(t.fields.get(&field), Some(&case));
    assert!(t.comments.is_empty(), "the description is not a comment: {:?}", t.comments.len());
    assert!(t.created_at >= before, "created_at {} before {before}", t.created_at);
    assert!(t.updated_at >= t.created_at);

    // Without requester and description: a placeholder customer (read back as none) and body `-`.
    let bare = NewTicket {
        title: support::unique("ohne Melder"),
        status: "open".into(),
        queue: env("OTOBO_QUEUE"),
        ..NewTicket::default()
    };
    let id = o.create(&bare).await.expect("create bare");
    let t = o.get(&id).await.expect("get bare");
    assert_eq!(t.requester, None);
    assert_eq!(t.status, "open");
    assert_eq!(t.priority.as_deref(), Some("3 normal"));
}

#[tokio::test]
async fn get_of_a_missing_ticket_is_not_found() {
    let o = client();
    for id in ["999999999", "abc", "1/../2", ""] {
        match o.get(id).await {
            Err(SystemError::NotFound { .. }) => {}
            other => panic!("{id:?}: expected NotFound, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn find_by_field_is_exact() {
    let o = client();
    let field = env("OTOBO_CASE_FIELD");
    let (id, case) = new_ticket(&o, "find me").await;
    assert_eq!(o.find_by_field(&field, &case).await.expect("find"), Some(id.clone()));
    // OTOBO's search is case-insensitive; the connector is not.
    assert_eq!(o.find_by_field(&field, &case.to_uppercase()).await.expect("find upper"), None);
    assert_eq!(o.find_by_field(&field, &case_id()).await.expect("find other"), None);
    // OTOBO ignores a search on an unknown field (answers every ticket): the connector reads back.
    assert!(matches!(o.find_by_field("NoSuchField", &case).await, Err(SystemError::Refused { .. })));
    assert!(matches!(o.find_by_field("bad name", &case).await, Err(SystemError::Refused { .. })));
}

#[tokio::test]
async fn update_with_read_back() {
    let o = client();
    let field = env("OTOBO_CASE_FIELD");
    let (id, _) = new_ticket(&o, "update me").await;
    let new_case = case_id();
    let change = TicketChange {
        status: Some("open".into()),
        priority: Some("4 high".into()),
        queue: Some("Misc".into()),
        kind: Some("Service Request".into()),
        fields: BTreeMap::from([(field.clone(), new_case.clone())]),
    };
    o.update(&id, &change).await.expect("update");
    let t = o.get(&id).await.expect("get");
    assert_eq!(t.status, "open");
    assert_eq!(t.priority.as_deref(), Some("4 high"));
    assert_eq!(t.queue.as_deref(), Some("Misc"));
    assert_eq!(t.kind.as_deref(), Some("Service Request"));
    assert_eq!(t.fields.get(&field), Some(&new_case));

    // A pending state needs a pending time in OTOBO: the connector gives one (now + 7 days).
    o.update(&id, &TicketChange { status: Some("pending reminder".into()), ..Default::default() })
        .await
        .expect("pending");
    assert_eq!(o.get(&id).await.expect("get").status, "pending reminder");
    // Setting the same again changes nothing and succeeds.
    o.update(&id, &TicketChange { status: Some("pending reminder".into()), ..Default::default() })
        .await
        .expect("pending again");
    for status in ["closed successful", "open", "new", "closed unsuccessful"] {
        o.update(&id, &TicketChange { status: Some(status.into()), ..Default::default() })
            .await
            .unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(o.get(&id).await.expect("get").status, status);
    }
    // Clearing a field.
    o.update(&id, &TicketChange { fields: BTreeMap::from([(field.clone(), String::new())]), ..Default::default() })
        .await
        .expect("clear field");
    assert_eq!(o.get(&id).await.expect("get").fields.get(&field), None);
    // An empty change is fine; a missing ticket is NotFound.
    o.update(&id, &TicketChange::default()).await.expect("empty change");
    assert!(matches!(
        o.update("999999999", &TicketChange { status: Some("open".into()), ..Default::default() }).await,
        Err(SystemError::NotFound { .. })
    ));
}

#[tokio::test]
async fn refused_values_change_nothing() {
    let o = client();
    let (id, _) = new_ticket(&o, "refuse me").await;
    let before = o.get(&id).await.expect("get");
    let cases = [
        TicketChange { status: Some("erledigt".into()), priority: Some("5 very high".into()), ..Default::default() },
        TicketChange { queue: Some("No Such Queue".into()), status: Some("open".into()), ..Default::default() },
        TicketChange { kind: Some("No Such Type".into()), priority: Some("1 very low".into()), ..Default::default() },
        TicketChange { priority: Some("9 urgent".into()), queue: Some("Misc".into()), ..Default::default() },
        TicketChange {
            fields: BTreeMap::from([("NoSuchField".into(), "x".into())]),
            status: Some("open".into()),
            ..Default::default()
        },
    ];
    for change in cases {
        match o.update(&id, &change).await {
            Err(SystemError::Refused { .. }) => {}
            other => panic!("{change:?}: expected Refused, got {other:?}"),
        }
        let after = o.get(&id).await.expect("get");
        assert_eq!(
            (&after.status, &after.priority, &after.queue, &after.kind, &after.fields),
            (&before.status, &before.priority, &before.queue, &before.kind, &before.fields),
            "{change:?} changed something"
        );
    }
    // Creating with an unknown status is refused too, and creates nothing findable.
    let case = case_id();
    let bad = NewTicket {
        title: support::unique("bad status"),
        description: "x".into(),
        status: "erledigt".into(),
        queue: env("OTOBO_QUEUE"),
        fields: BTreeMap::from([(env("OTOBO_CASE_FIELD"), case.clone())]),
        ..NewTicket::default()
    };
    assert!(matches!(o.create(&bad).await, Err(SystemError::Refused { .. })));
    assert_eq!(o.find_by_field(&env("OTOBO_CASE_FIELD"), &case).await.expect("find"), None);
}

#[tokio::test]
async fn comments_round_trip_with_marker() {
    let o = client();
    let (id, _) = new_ticket(&o, "comments").await;
    let m1 = format!("[sdx:{}/1]", uuid::Uuid::now_v7());
    let m2 = format!("[sdx:{}/2]", uuid::Uuid::now_v7());
    let public_text = format!("Guten Tag,\r\n\r\n  wir kümmern uns darum – Ticket «7».\r\n{m1}\r\n");
    let internal_text = format!("{m2}\nIntern: Techniker Müller fährt hin. <b>kein HTML</b> & \"Zitat\"\n\tEingerückt");
    let c1 = o
        .comment(&id, &NewComment { public: true, text: public_text.clone(), files: vec![] })
        .await
        .expect("public comment");
    let c2 = o
        .comment(&id, &NewComment { public: false, text: internal_text.clone(), files: vec![] })
        .await
        .expect("internal comment");
    let long_line = "x".repeat(5000);
    let c3 =
        o.comment(&id, &NewComment { public: false, text: long_line.clone(), files: vec![] }).await.expect("long line");
    let t = o.get(&id).await.expect("get");
    assert_eq!(t.description, "Beschreibung: Drucker im 3. OG druckt nicht.");
    let ids: Vec<&str> = t.comments.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, [c1.as_str(), c2.as_str(), c3.as_str()]);
    let (p, i, l) = (&t.comments[0], &t.comments[1], &t.comments[2]);
    assert!(p.public && !i.public && !l.public);
    assert!(p.text.contains(&m1), "marker not found verbatim in {:?}", p.text);
    assert!(i.text.contains(&m2), "marker not found verbatim in {:?}", i.text);
    // Exactly what was written, as OTOBO stores text: LF line ends, surrounding whitespace trimmed.
    assert_eq!(p.text, public_text.replace("\r\n", "\n").trim());
    assert_eq!(i.text, internal_text);
    assert_eq!(l.text, long_line);
    assert!(p.author.is_some());
    assert!(p.created_at >= t.created_at);
    assert!(matches!(
        o.comment("999999999", &NewComment { public: false, text: "x".into(), files: vec![] }).await,
        Err(SystemError::NotFound { .. })
    ));
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8).collect()
}

#[tokio::test]
async fn files_round_trip() {
    let o = client();
    let (id, _) = new_ticket(&o, "files").await;
    let pdf =
        NewFile {
            name: "Bescheid Größe.pdf".into(), media_type: "application/pdf".into(), content: bytes(150_000, 7)
        };
    let txt = NewFile {
        name: "notiz.txt".into(),
        media_type: "text/plain".into(),
        content: b"zeile 1\r\nzeile 2\n".to_vec(),
    };
    let zero = NewFile { name: "leer.bin".into(), media_type: "application/octet-stream".into(), content: vec![0; 10] };
    let c1 = o
        .comment(&id, &NewComment { public: true, text: "mit Anlagen".into(), files: vec![pdf.clone(), txt.clone()] })
        .await
        .expect("comment with files");
    // More articles after it, so that download has to pick the right one.
    for n in 0..3 {
        o.comment(&id, &NewComment { public: false, text: format!("danach {n}"), files: vec![] }).await.expect("more");
    }
    let c2 = o
        .comment(&id, &NewComment { public: false, text: String::new(), files: vec![zero.clone()] })
        .await
        .expect("file without text");
    let t = o.get(&id).await.expect("get");
    let with_files = t.comments.iter().find(|c| c.id == c1).expect("comment c1");
    assert_eq!(with_files.files.len(), 2);
    for sent in [&pdf, &txt] {
        let info = with_files.files.iter().find(|f| f.name == sent.name).expect("file listed by name");
        assert_eq!(info.size, sent.content.len() as u64);
        assert!(info.media_type.starts_with(&sent.media_type), "{} vs {}", info.media_type, sent.media_type);
        assert_eq!(o.download(&id, info).await.expect("download"), sent.content, "{}", sent.name);
    }
    let last = t.comments.iter().find(|c| c.id == c2).expect("comment c2");
    assert_eq!(last.text, "-");
    assert_eq!(o.download(&id, &last.files[0]).await.expect("download zero"), zero.content);
    // A file that is not there.
    let mut ghost = last.files[0].clone();
    ghost.id = format!("{c2}/99");
    assert!(matches!(o.download(&id, &ghost).await, Err(SystemError::NotFound { .. })));
}

#[tokio::test]
async fn too_large_writes_nothing() {
    let o = client();
    let limit: u64 = env("OTOBO_MAX_FILE_BYTES").parse().expect("OTOBO_MAX_FILE_BYTES");
    let vocabulary = o.vocabulary().await.expect("vocabulary");
    assert_eq!(vocabulary.max_file_bytes, Some(limit));
    let (id, _) = new_ticket(&o, "too large").await;
    let before = o.get(&id).await.expect("get").comments.len();

    let big = NewFile {
        name: "gross.bin".into(),
        media_type: "application/octet-stream".into(),
        content: vec![1; limit as usize + 1],
    };
    match o.comment(&id, &NewComment { public: true, text: "zu gross".into(), files: vec![big] }).await {
        Err(SystemError::TooLarge { size, limit: l, .. }) => assert_eq!((size, l), (limit + 1, limit)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // Two files below the limit but above it together (they go in one request).
    let half = (limit / 2 + 1) as usize;
    let files = vec![
        NewFile { name: "a.bin".into(), media_type: "application/octet-stream".into(), content: vec![2; half] },
        NewFile { name: "b.bin".into(), media_type: "application/octet-stream".into(), content: vec![3; half] },
    ];
    assert!(matches!(
        o.comment(&id, &NewComment { public: false, text: "zusammen zu gross".into(), files }).await,
        Err(SystemError::TooLarge { .. })
    ));
    assert_eq!(o.get(&id).await.expect("get").comments.len(), before, "nothing was written");

    // A title above OTOBO's 191 characters (OTOBO itself would cut it silently).
    let long = NewTicket {
        title: "T".repeat(192),
        description: "x".into(),
        status: "new".into(),
        queue: env("OTOBO_QUEUE"),
        ..Default::default()
    };
    assert!(matches!(o.create(&long).await, Err(SystemError::TooLarge { size: 192, limit: 191, .. })));
}

#[tokio::test]
async fn a_file_at_the_limit_is_taken() {
    let o = client();
    let limit: usize = env("OTOBO_MAX_FILE_BYTES").parse().expect("OTOBO_MAX_FILE_BYTES");
    let (id, _) = new_ticket(&o, "at the limit").await;
    let file =
        NewFile { name: "genau.bin".into(), media_type: "application/octet-stream".into(), content: bytes(limit, 3) };
    let c = o
        .comment(&id, &NewComment { public: false, text: "genau an der Grenze".into(), files: vec![file.clone()] })
        .await
        .expect("a file of exactly the limit");
    let t = o.get(&id).await.expect("get");
    let info = &t.comments.iter().find(|x| x.id == c).expect("comment").files[0];
    assert_eq!(info.size, limit as u64);
    assert!(o.download(&id, info).await.expect("download") == file.content);
}

#[tokio::test]
async fn changed_since_sees_comments_and_is_inclusive() {
    let o = client();
    let (id, _) = new_ticket(&o, "changed since").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let since = OffsetDateTime::now_utc();
    let before = o.changed_since(since).await.expect("changed_since");
    assert!(!before.contains(&id), "the ticket did not change since {since}");

    o.comment(&id, &NewComment { public: false, text: "nur ein Kommentar".into(), files: vec![] })
        .await
        .expect("comment");
    let after = o.changed_since(since).await.expect("changed_since");
    assert!(after.contains(&id), "a ticket whose only change is a comment is listed");

    // Inclusive: `since` equal to the second of the last change still lists it.
    let t = o.get(&id).await.expect("get");
    let at = o.changed_since(t.updated_at).await.expect("changed_since at updated_at");
    assert!(at.contains(&id), "changed_since({}) is inclusive", t.updated_at);
    let later = o.changed_since(t.updated_at + Duration::from_secs(1)).await.expect("changed_since later");
    assert!(!later.contains(&id), "nothing changed after {}", t.updated_at);
}

#[tokio::test]
async fn wrong_credentials_are_auth() {
    for (user, password) in [(env("OTOBO_USER"), "wrong password".to_string()), ("nobody-sdx".into(), "x".into())] {
        let o = Otobo::new(Config { user, password: Secret::new(password), ..config() }).expect("client");
        match o.vocabulary().await {
            Err(SystemError::Auth { .. }) => {}
            other => panic!("expected Auth, got {other:?}"),
        }
        assert!(matches!(o.get("1").await, Err(SystemError::Auth { .. })));
    }
}

#[tokio::test]
async fn closed_port_is_unavailable() {
    let o = Otobo::new(Config {
        url: "http://127.0.0.1:1/otobo/nph-genericinterface.pl/Webservice/SDX".into(),
        ..config()
    })
    .expect("client");
    let e = o.get("1").await.expect_err("closed port");
    assert!(matches!(e, SystemError::Unavailable { .. }), "{e:?}");
    assert!(e.is_transient());
    // Wrong web service name: OTOBO answers HTTP 500; not our ticket system either way.
    let wrong =
        Otobo::new(Config { url: env("OTOBO_URL").replace("/SDX", "/NoSuchService"), ..config() }).expect("client");
    assert!(wrong.vocabulary().await.is_err());
}

#[tokio::test]
async fn vocabulary_lists_the_setup() {
    let v = client().vocabulary().await.expect("vocabulary");
    for s in ["new", "open", "closed successful", "closed unsuccessful", "pending reminder"] {
        assert!(v.statuses.iter().any(|x| x == s), "status {s} in {:?}", v.statuses);
    }
    for p in ["1 very low", "3 normal", "5 very high"] {
        assert!(v.priorities.iter().any(|x| x == p), "priority {p} in {:?}", v.priorities);
    }
    for q in [env("OTOBO_QUEUE").as_str(), "Misc"] {
        assert!(v.queues.iter().any(|x| x == q), "queue {q} in {:?}", v.queues);
    }
    for k in ["Unclassified", "Incident", "Service Request"] {
        assert!(v.kinds.iter().any(|x| x == k), "type {k} in {:?}", v.kinds);
    }
    assert!(v.fields.contains(&env("OTOBO_CASE_FIELD")), "{:?}", v.fields);
    assert_eq!(v.max_title_chars, Some(191));
}

#[tokio::test]
async fn an_expired_session_logs_in_again() {
    let o = client();
    o.vocabulary().await.expect("first call logs in");
    // Delete every session in OTOBO (as an expiry would); the next call must log in again by itself.
    let home = sdx_connectors::scripts::ts_dir().join("otobo/src");
    let out = std::process::Command::new("runuser")
        .args(["-u", "otobo", "--", "perl", "bin/otobo.Console.pl", "Maint::Session::DeleteAll", "--quiet"])
        .current_dir(&home)
        .output()
        .expect("run Maint::Session::DeleteAll");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (id, _) = new_ticket(&o, "after session loss").await;
    assert_eq!(o.get(&id).await.expect("get").id, id);
}
