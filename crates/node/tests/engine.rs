//! Two engines (MiLa and BeLa), each on its own SQLite file (some tests on PostgreSQL too), wired through an
//! in-process transport (`support`): use cases 2.1 and 2.2 end to end, duplicates, gaps, replays, refusals,
//! claims in another organisation's name, crossing changes, dead letters that block a case until an operator
//! retries or skips them, and which failures are retried. (The same over real HTTP and mutual TLS between real
//! processes is in the node's and the CLI's integration tests; random interleavings in `convergence.rs`.)

mod support;

use std::sync::atomic::Ordering;

use sdx_model::sample::{BELA, MILA};
use sdx_model::*;
use sdx_node::engine::{Answer, TransportError};
use sdx_store::{DeliveryState, EventKind, MessageState, Store};

use support::*;

#[tokio::test]
async fn use_cases_forward_and_return_leave_both_sides_identical() {
    let p = Pair::new(Db::Sqlite).await;
    let case = fresh_case();
    let id = case.case_id;
    p.mila().forward(case, Some("Bitte prüfen".into())).await.unwrap();
    assert_eq!(p.mila().deliver_due(&p.to_bela, 10).await.unwrap(), 1);
    assert_eq!(case_at(&p.bela(), id).await.status, Status::New);

    p.bela().change(id, upd(Status::InProgress, None)).await.unwrap();
    p.bela().change(id, upd(Status::Pending, Some(PendingReason::WaitingForRequester))).await.unwrap();
    assert_eq!(p.bela().deliver_due(&p.to_mila, 10).await.unwrap(), 2);
    assert_eq!(case_at(&p.mila(), id).await.status, Status::Pending);

    // MiLa answers with a public journal entry and moves the case back to work.
    let answer = JournalEntry {
        id: ItemId::new_random(),
        visibility: Visibility::Public,
        author: Author { organisation: OrgKey::parse(MILA).unwrap(), name: None },
        created_at: Timestamp::now(),
        text: "Die Bürgerin hat die Datei als PDF/A erneut gesendet.".into(),
    };
    let body = Body::Update(Update {
        revision: 0,
        status: Some(Status::InProgress),
        journal: vec![answer],
        ..Update::default()
    });
    p.mila().change(id, body).await.unwrap();
    assert_eq!(p.mila().deliver_due(&p.to_bela, 10).await.unwrap(), 1);

    let solution = Solution {
        code: ResolutionCode::Fixed,
        text: "Upload-Grenze auf 20 MB erhöht.".into(),
        resolved_at: Timestamp::now(),
        resolved_by: OrgKey::parse(BELA).unwrap(),
    };
    p.bela()
        .change(id, Body::Resolve(Resolve { revision: 0, solution: solution.clone(), journal: vec![] }))
        .await
        .unwrap();
    p.bela().change(id, Body::HandBack(HandBack { revision: 0, solution: Some(solution), note: None })).await.unwrap();
    assert_eq!(p.bela().deliver_due(&p.to_mila, 10).await.unwrap(), 2);
    p.mila().change(id, Body::Close(Close { revision: 0, closure_code: None, note: None })).await.unwrap();
    assert_eq!(p.mila().deliver_due(&p.to_bela, 10).await.unwrap(), 1);

    let (m, b) = (case_at(&p.mila(), id).await, case_at(&p.bela(), id).await);
    assert_eq!(m.status, Status::Closed);
    assert_eq!(m, b, "both copies of the case are identical");
    assert_eq!(m.status_history.len(), 6);
    // Every message of both sides is delivered: nothing pending.
    for e in [&p.mila(), &p.bela()] {
        let pending = e.store().list_deliveries(Some(sdx_store::DeliveryState::Pending), 100).await.unwrap();
        assert!(pending.is_empty(), "{pending:?}");
    }
    assert!(!p.mila().store().timeline(id).await.unwrap().is_empty());
}

#[tokio::test]
async fn duplicates_are_acknowledged_again_and_applied_once() {
    let p = Pair::new(Db::Sqlite).await;
    let case = fresh_case();
    let id = case.case_id;
    p.mila().forward(case, None).await.unwrap();
    p.mila().deliver_due(&p.to_bela, 10).await.unwrap();
    let jws = p.to_bela.sent.lock().unwrap()[0].clone();
    let mila = OrgKey::parse(MILA).unwrap();
    let first = p.bela().store().timeline(id).await.unwrap().len();
    let again = p.bela().receive(jws.as_bytes(), &mila).await.unwrap();
    let Answer::Receipt { result, .. } = again else { panic!("{again:?}") };
    assert_eq!(result, ReceiptResult::Accepted);
    assert_eq!(p.bela().store().timeline(id).await.unwrap().len(), first, "nothing applied twice");
    assert_eq!(case_at(&p.bela(), id).await.revision, 1);
}

#[tokio::test]
async fn a_gap_is_held_until_filled_and_a_receiver_that_was_down_gets_everything_in_order() {
    let p = Pair::new(Db::Sqlite).await;
    let case = fresh_case();
    let id = case.case_id;
    p.mila().forward(case, None).await.unwrap();
    p.mila().deliver_due(&p.to_bela, 10).await.unwrap();
    // MiLa is down: BeLa's three changes wait in its outbox.
    p.to_mila.down.store(true, Ordering::SeqCst);
    p.bela().change(id, upd(Status::Acknowledged, None)).await.unwrap();
    p.bela().change(id, upd(Status::InProgress, None)).await.unwrap();
    p.bela().change(id, upd(Status::Pending, Some(PendingReason::WaitingForThirdParty))).await.unwrap();
    assert_eq!(p.bela().deliver_due(&p.to_mila, 10).await.unwrap(), 0);
    let failing = p.bela().store().list_deliveries(Some(sdx_store::DeliveryState::Pending), 10).await.unwrap();
    // Only the case's first message was tried; the later ones wait for it (a case's messages go in order).
    let mut tried: Vec<_> = Vec::new();
    for d in &failing {
        let seq = p.bela().store().get_message(d.message_id).await.unwrap().unwrap().sequence.unwrap();
        tried.push((seq, d.attempts > 0, d.last_error.is_some()));
    }
    tried.sort();
    assert_eq!(tried, [(1, true, true), (2, false, false), (3, false, false)], "{failing:?}");
    // MiLa is back. Deliver the messages in reverse order by hand (as a sender that does not keep the order
    // might): 3 and 2 are held, 1 fills the gap.
    p.to_mila.down.store(false, Ordering::SeqCst);
    let mut out: Vec<_> = Vec::new();
    for d in failing {
        let m = p.bela().store().get_message(d.message_id).await.unwrap().unwrap();
        out.push((m.sequence.unwrap(), m.jws));
    }
    out.sort();
    let bela = OrgKey::parse(BELA).unwrap();
    for (seq, jws) in out.iter().rev() {
        let a = p.mila().receive(jws.as_bytes(), &bela).await.unwrap();
        assert!(matches!(a, Answer::Receipt { result: ReceiptResult::Accepted, .. }), "seq {seq}: {a:?}");
        let status = case_at(&p.mila(), id).await.status;
        if *seq > 1 {
            assert_eq!(status, Status::New, "held messages are not applied before the gap is filled");
        }
    }
    let c = case_at(&p.mila(), id).await;
    assert_eq!(c.status, Status::Pending);
    let hist: Vec<_> = c.status_history.iter().map(|s| s.status).collect();
    assert_eq!(hist, [Status::New, Status::Acknowledged, Status::InProgress, Status::Pending]);
    // The regular retry now finds them delivered already (same receipts) and finishes.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(p.bela().deliver_due(&p.to_mila, 10).await.unwrap(), 3);
}

#[tokio::test]
async fn forged_replayed_misaddressed_and_forbidden_messages_change_nothing() {
    let p = Pair::new(Db::Sqlite).await;
    let case = fresh_case();
    let id = case.case_id;
    p.mila().forward(case, None).await.unwrap();
    p.mila().deliver_due(&p.to_bela, 10).await.unwrap();
    let (mila, bela) = (OrgKey::parse(MILA).unwrap(), OrgKey::parse(BELA).unwrap());
    let before = case_at(&p.bela(), id).await;
    let events = p.bela().store().timeline(id).await.unwrap().len();

    let negative = |a: Answer| match a {
        Answer::Receipt { result, jws } => {
            assert_eq!(result, ReceiptResult::Rejected);
            let (_, payload) = sdx_crypto::jws::decode_unverified(&jws).unwrap();
            let m = sdx_codec::json::decode(&payload).unwrap();
            let Body::Receipt(r) = m.body else { panic!() };
            r.errors[0].code
        }
        Answer::Problem { code, .. } => code,
    };
    // An unknown TLS peer gets a problem, not a receipt.
    let other = OrgKey::parse("psw:99999999").unwrap();
    let jws = p.to_bela.sent.lock().unwrap()[0].clone();
    assert_eq!(negative(p.bela().receive(jws.as_bytes(), &other).await.unwrap()), ErrorCode::UnknownSender);
    // Signed by MiLa's key but arriving over BeLa's own identity: signature does not match the TLS peer's key.
    assert_eq!(negative(p.bela().receive(jws.as_bytes(), &bela).await.unwrap()), ErrorCode::UnknownSender);
    // A forged signature.
    let mut forged = jws.clone().into_bytes();
    let n = forged.len();
    forged[n - 5] = if forged[n - 5] == b'A' { b'B' } else { b'A' };
    assert_eq!(negative(p.bela().receive(&forged, &mila).await.unwrap()), ErrorCode::SignatureInvalid);
    // The originator may not set inProgress from new: refused, nothing stored but the refusal.
    let local = p.mila().change(id, upd(Status::InProgress, None)).await.unwrap_err();
    assert!(local.to_string().contains("notPermitted"), "{local}");
    assert_eq!(case_at(&p.bela(), id).await, before);
    assert_eq!(p.bela().store().timeline(id).await.unwrap().len(), events);
    // Messages that BeLa has not seen remain unknown.
    let m = p.bela().store().get_message(MessageId::new_random()).await.unwrap();
    assert!(m.is_none());
    let (_, payload) = sdx_crypto::jws::decode_unverified(&jws).unwrap();
    let forwarded = sdx_codec::json::decode(&payload).unwrap();
    let stored = p.bela().store().get_message(forwarded.header.message_id).await.unwrap().unwrap();
    assert_eq!(stored.state, MessageState::Applied);
}

/// Every event of `kind` in the case's timeline at `e`, as (message id, detail).
/// Both copies of case `id` are identical and their journal ends with `texts`: the copy.
async fn same_copies_ending_with(p: &Pair, id: CaseId, texts: &[&str]) -> Case {
    let (m, b) = (case_at(&p.mila(), id).await, case_at(&p.bela(), id).await);
    assert_eq!(m, b);
    let journal: Vec<_> = m.journal.iter().map(|e| e.text.as_str()).collect();
    assert!(journal.ends_with(texts), "{journal:?}");
    m
}

async fn events(e: &E, id: CaseId, kind: EventKind) -> Vec<(Option<MessageId>, String)> {
    e.store()
        .timeline(id)
        .await
        .unwrap()
        .into_iter()
        .filter(|ev| ev.kind == kind)
        .map(|ev| (ev.message_id, ev.detail))
        .collect()
}

/// BeLa resolves while MiLa cancels (they cannot reach each other): when the link heals both copies are identical,
/// the cancel lost, and MiLa's timeline says so with the state that won.
async fn crossing_resolve_and_cancel(db: Db) {
    let p = Pair::new(db).await;
    let case = fresh_case();
    let id = case.case_id;
    p.mila().forward(case, None).await.unwrap();
    p.settle(10).await;
    p.bela().change(id, upd(Status::InProgress, None)).await.unwrap();
    p.settle(10).await;
    p.to_bela.down.store(true, Ordering::SeqCst);
    p.to_mila.down.store(true, Ordering::SeqCst);
    p.bela()
        .change(id, Body::Resolve(Resolve { revision: 0, solution: solution(&bela_org()), journal: vec![] }))
        .await
        .unwrap();
    let cancel = p.mila().change(id, upd(Status::Cancelled, None)).await.unwrap();
    assert_eq!(cancel.case.status, Status::Cancelled, "MiLa's own copy shows its change at once");
    // Both try while the link is down; then it heals.
    p.mila().deliver_due(&p.to_bela, 10).await.unwrap();
    p.bela().deliver_due(&p.to_mila, 10).await.unwrap();
    p.to_bela.down.store(false, Ordering::SeqCst);
    p.to_mila.down.store(false, Ordering::SeqCst);
    p.settle(50).await;
    let (m, b) = (case_at(&p.mila(), id).await, case_at(&p.bela(), id).await);
    assert_eq!(m, b, "both copies identical");
    assert_eq!(m.status, Status::Resolved, "the assignee side's resolve won");
    // The cancel is not silently gone: rejected at MiLa, with a conflict naming the state that won.
    let msg = p.mila().store().get_message(cancel.message_id).await.unwrap().unwrap();
    assert_eq!(msg.state, MessageState::Rejected);
    let conflicts = events(&p.mila(), id, EventKind::Conflict).await;
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0].0, Some(cancel.message_id));
    assert!(
        conflicts[0].1.contains("invalidTransition") && conflicts[0].1.contains("`resolved`"),
        "{}",
        conflicts[0].1
    );
    assert_eq!(events(&p.bela(), id, EventKind::Conflict).await.len(), 1, "BeLa's timeline shows the refused cancel");
    // Nothing dead, nothing pending.
    for e in [p.mila(), p.bela()] {
        assert!(e.store().list_deliveries(Some(DeliveryState::Dead), 10).await.unwrap().is_empty());
        assert_eq!(pending(&e).await, 0);
    }
    p.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_resolve_and_cancel_converge_on_sqlite() {
    crossing_resolve_and_cancel(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossing_resolve_and_cancel_converge_on_postgres() {
    crossing_resolve_and_cancel(Db::Postgres).await;
}

/// MiLa adds information while BeLa (not yet knowing it) sets the case pending: MiLa's replay puts BeLa's change
/// first, both journals and histories end identical, nothing is lost.
#[tokio::test]
async fn crossing_changes_that_both_apply_end_in_the_same_order() {
    let p = Pair::new(Db::Sqlite).await;
    let case = fresh_case();
    let id = case.case_id;
    p.mila().forward(case, None).await.unwrap();
    p.settle(10).await;
    p.to_bela.down.store(true, Ordering::SeqCst);
    p.to_mila.down.store(true, Ordering::SeqCst);
    let info = Body::Update(Update {
        revision: 0,
        journal: vec![note(&mila_org(), "Nachtrag der Bürgerin")],
        ..Update::default()
    });
    p.mila().change(id, info).await.unwrap();
    p.bela().change(id, upd(Status::Pending, Some(PendingReason::WaitingForRequester))).await.unwrap();
    let bela_note = Body::Update(Update {
        revision: 0,
        journal: vec![note(&bela_org(), "Bitte Beleg senden")],
        ..Update::default()
    });
    p.bela().change(id, bela_note).await.unwrap();
    p.to_bela.down.store(false, Ordering::SeqCst);
    p.to_mila.down.store(false, Ordering::SeqCst);
    // MiLa's message arrives first at BeLa (after BeLa's own two), then BeLa's two at MiLa.
    p.settle(50).await;
    same_copies_ending_with(&p, id, &["Bitte Beleg senden", "Nachtrag der Bürgerin"]).await;
    assert!(events(&p.mila(), id, EventKind::Conflict).await.is_empty());
}

/// A forward whose status history, journal or originator names another organisation is refused with
/// `senderMismatch` and nothing of it is stored.
#[tokio::test]
async fn claims_in_another_organisations_name_are_refused() {
    let p = Pair::new(Db::Sqlite).await;
    let other = OrgKey::parse("psw:09162000").unwrap();
    let mut case = fresh_case();
    case.journal[0].author.organisation = other.clone();
    let id = case.case_id;
    // The sending node refuses it already …
    let e = p.mila().forward(case.clone(), None).await.unwrap_err();
    assert!(e.to_string().contains("senderMismatch"), "{e}");
    // … and a receiver refuses a forged one that gets past a sender: sealed by MiLa's key by hand.
    let m = Message {
        header: sample::header(MessageType::Forward, MILA, BELA, 1, 1),
        body: Body::Forward(Forward { case, note: None }),
    };
    let forged = {
        let mut m = m;
        m.header.case_id = Some(id);
        m.header.message_id = MessageId::new_random();
        m
    };
    let jws = p.mila_identity().seal(&forged).unwrap().jws;
    let a = p.bela().receive(jws.as_bytes(), &mila_org()).await.unwrap();
    let Answer::Receipt { result, jws } = a else { panic!("{a:?}") };
    assert_eq!(result, ReceiptResult::Rejected);
    let (_, payload) = sdx_crypto::jws::decode_unverified(&jws).unwrap();
    let Body::Receipt(r) = sdx_codec::json::decode(&payload).unwrap().body else { panic!() };
    assert_eq!(r.errors[0].code, ErrorCode::SenderMismatch);
    assert!(p.bela().store().get_case(id).await.unwrap().is_none(), "no case stored");
    assert!(
        p.bela().store().get_message(forged.header.message_id).await.unwrap().map(|m| m.state)
            == Some(MessageState::Refused)
    );
}

/// The digest a receipt quotes is over exactly the bytes kept; the same JWS with transport whitespace around it is
/// the same message (answered with the same receipt), not a replay.
#[tokio::test]
async fn transport_whitespace_does_not_make_another_message() {
    let p = Pair::new(Db::Sqlite).await;
    let case = fresh_case();
    let id = case.case_id;
    p.mila().forward(case, None).await.unwrap();
    p.settle(10).await;
    let jws = p.to_bela.sent.lock().unwrap()[0].clone();
    let padded = format!("\r\n  {jws}\n");
    let a = p.bela().receive(padded.as_bytes(), &mila_org()).await.unwrap();
    let Answer::Receipt { result, jws: receipt } = a else { panic!("{a:?}") };
    assert_eq!(result, ReceiptResult::Accepted, "the same message again, not a replay");
    let (_, payload) = sdx_crypto::jws::decode_unverified(&receipt).unwrap();
    let Body::Receipt(r) = sdx_codec::json::decode(&payload).unwrap().body else { panic!() };
    let kept = p.bela().store().get_message(r.received_message_id).await.unwrap().unwrap();
    assert_eq!(kept.jws, jws, "kept without the whitespace");
    assert_eq!(r.digest.as_ref(), Some(&sdx_node::protocol::sha256(kept.jws.as_bytes())), "the digest of what is kept");
    assert_eq!(case_at(&p.bela(), id).await.revision, 1);
}

/// Only transient failures are retried: an HTTP 4xx problem is a dead letter at once, with its reason; network
/// errors and 503 are retried, but not more than `max_attempts` times.
#[tokio::test]
async fn permanent_failures_die_at_once_transient_ones_are_retried_a_bounded_number_of_times() {
    let delivery = sdx_node::settings::DeliverySettings { max_attempts: 3, ..fast() };
    let p = Pair::with(Db::Sqlite, delivery).await;
    // 403: dead at once.
    *p.to_bela.fail_with.lock().unwrap() = Some(TransportError::from_answer(
        403,
        br#"{"type":"urn:xoev-de:sdx:problem:unknownSender","title":"unknownSender","status":403,"errorCode":"unknownSender","detail":"not a peer","retryable":false}"#,
    ));
    let a = fresh_case();
    p.mila().forward(a.clone(), None).await.unwrap();
    p.mila().deliver_due(&p.to_bela, 10).await.unwrap();
    let dead = p.mila().store().list_deliveries(Some(DeliveryState::Dead), 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 1, "not retried");
    assert!(dead[0].last_error.as_deref().unwrap().contains("403 unknownSender"), "{:?}", dead[0].last_error);
    // 503 and network errors: retried, until max_attempts.
    for fail in [TransportError::from_answer(503, b"busy"), TransportError::Network("connection refused".into())] {
        assert!(fail.is_transient());
        *p.to_bela.fail_with.lock().unwrap() = Some(fail.clone());
        let sent = p.mila().forward(fresh_case(), None).await.unwrap();
        for _ in 0..10 {
            p.mila().deliver_due(&p.to_bela, 10).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(6)).await;
        }
        let d = p.mila().store().list_deliveries(None, 100).await.unwrap();
        let mine = d.iter().find(|d| d.message_id == sent.message_id).unwrap();
        assert_eq!((mine.state, mine.attempts), (DeliveryState::Dead, 3), "{fail}: dead after exactly 3 attempts");
        assert_eq!(mine.last_error.as_deref(), Some(fail.to_string().as_str()));
    }
    // A retryable problem says so even with a 4xx.
    assert!(TransportError::from_answer(409, br#"{"errorCode":"internal","retryable":true}"#).is_transient());
    assert!(!TransportError::from_answer(500, br#"{"errorCode":"internal","retryable":false}"#).is_transient());
}

/// A dead letter blocks its case: the later messages are not sent past it (the peer would only hold them), the
/// operator sees the blocked case with its reason, and a retry — or a skip — resolves it.
#[tokio::test]
async fn a_dead_letter_blocks_its_case_until_retried_or_skipped() {
    let p = Pair::new(Db::Sqlite).await;
    let case = fresh_case();
    let id = case.case_id;
    p.mila().forward(case, None).await.unwrap();
    p.settle(10).await;
    // BeLa's next message dies (the peer answers 413), two more wait behind it.
    *p.to_mila.fail_with.lock().unwrap() =
        Some(TransportError::from_answer(413, br#"{"errorCode":"tooLarge","detail":"too large","retryable":false}"#));
    let first = p.bela().change(id, upd(Status::InProgress, None)).await.unwrap();
    p.bela().deliver_due(&p.to_mila, 10).await.unwrap();
    *p.to_mila.fail_with.lock().unwrap() = None;
    p.bela().change(id, upd(Status::Pending, Some(PendingReason::WaitingForRequester))).await.unwrap();
    let third = Body::Update(Update {
        revision: 0,
        journal: vec![note(&bela_org(), "Bitte Beleg senden")],
        ..Update::default()
    });
    p.bela().change(id, third).await.unwrap();
    p.settle(10).await;
    assert_eq!(case_at(&p.mila(), id).await.status, Status::New, "nothing went past the dead letter");
    assert!(p.to_mila.sent.lock().unwrap().is_empty(), "not even sent");
    let blocked = p.bela().store().list_blocked(10).await.unwrap();
    assert_eq!(blocked.len(), 1);
    assert_eq!((blocked[0].case_id, blocked[0].message_id, blocked[0].waiting), (id, first.message_id, 2));
    assert!(blocked[0].last_error.as_deref().unwrap().contains("413"));
    assert!(!events(&p.bela(), id, EventKind::Blocked).await.is_empty());
    // Retry: all three arrive in order.
    assert!(p.bela().retry_dead(first.message_id).await.unwrap());
    p.settle(10).await;
    assert!(p.bela().store().list_blocked(10).await.unwrap().is_empty());
    let (m, b) = (case_at(&p.mila(), id).await, case_at(&p.bela(), id).await);
    assert_eq!(m, b);
    assert_eq!(m.status, Status::Pending);

    // Now a dead letter that is skipped: withdrawn at BeLa, the message behind it renumbered and delivered.
    *p.to_mila.fail_with.lock().unwrap() = Some(TransportError::from_answer(400, br#"{"errorCode":"malformed"}"#));
    let doomed =
        Body::Update(Update { revision: 0, journal: vec![note(&bela_org(), "verloren")], ..Update::default() });
    let doomed = p.bela().change(id, doomed).await.unwrap();
    p.bela().deliver_due(&p.to_mila, 10).await.unwrap();
    *p.to_mila.fail_with.lock().unwrap() = None;
    p.bela().change(id, upd(Status::InProgress, None)).await.unwrap();
    assert!(!p.bela().skip_dead(MessageId::new_random()).await.unwrap(), "only a dead letter can be skipped");
    assert!(p.bela().skip_dead(doomed.message_id).await.unwrap());
    p.settle(10).await;
    let (m, b) = (case_at(&p.mila(), id).await, case_at(&p.bela(), id).await);
    assert_eq!(m, b, "identical after the skip");
    assert_eq!(m.status, Status::InProgress);
    assert!(!m.journal.iter().any(|e| e.text == "verloren"), "the skipped change is withdrawn on both sides");
    assert_eq!(p.bela().store().get_message(doomed.message_id).await.unwrap().unwrap().state, MessageState::Skipped);
    assert_eq!(events(&p.bela(), id, EventKind::Skipped).await.len(), 1);
    // A forward cannot be skipped.
    let c2 = fresh_case();
    *p.to_bela.fail_with.lock().unwrap() = Some(TransportError::from_answer(400, b"no"));
    let f = p.mila().forward(c2, None).await.unwrap();
    p.mila().deliver_due(&p.to_bela, 10).await.unwrap();
    let e = p.mila().skip_dead(f.message_id).await.unwrap_err();
    assert!(e.to_string().contains("notPermitted"), "{e}");
}

/// A signing key rolls over without a pause (docs/operations.md, 9): BeLa trusts MiLa's old and new key (a JWK
/// set in its settings), MiLa switches to the new one while a change it signed with the old one still waits in its
/// outbox; both arrive and apply, in order. A key BeLa does not hold is refused, and nothing of its message applies.
#[tokio::test]
async fn a_signing_key_rolls_over_while_a_message_signed_with_the_old_one_is_in_flight() {
    let mut p = Pair::new(Db::Sqlite).await;
    let case = fresh_case();
    let id = case.case_id;
    p.mila().forward(case, None).await.unwrap();
    p.settle(10).await;
    let old = p.mila_identity().signing_key.public_key(sdx_crypto::Alg::Es256).unwrap();
    let new = sdx_crypto::PrivateKey::generate(sdx_crypto::Alg::Es256).unwrap();

    // BeLa is unreachable: a note signed with the old key waits in MiLa's outbox.
    p.to_bela.down.store(true, Ordering::SeqCst);
    let info =
        |text: &str| Body::Update(Update { revision: 0, journal: vec![note(&mila_org(), text)], ..Update::default() });
    p.mila().change(id, info("signed with the old key")).await.unwrap();
    p.trust(&bela_org(), vec![old.clone(), new.public_key(sdx_crypto::Alg::Es256).unwrap()]).await;
    p.sign_with(&mila_org(), &new).await;
    p.mila().change(id, info("signed with the new key")).await.unwrap();
    p.to_bela.down.store(false, Ordering::SeqCst);
    p.settle(50).await;
    let b = same_copies_ending_with(&p, id, &["signed with the old key", "signed with the new key"]).await;
    assert!(p.mila().store().list_deliveries(Some(DeliveryState::Dead), 10).await.unwrap().is_empty());

    // A key BeLa does not hold: refused at once, a dead letter with the reason, the case unchanged at BeLa.
    let stranger = sdx_crypto::PrivateKey::generate(sdx_crypto::Alg::Es256).unwrap();
    p.sign_with(&mila_org(), &stranger).await;
    p.mila().change(id, info("signed with a key nobody was given")).await.unwrap();
    p.settle(10).await;
    let dead = p.mila().store().list_deliveries(Some(DeliveryState::Dead), 10).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].last_error.as_deref().is_some_and(|e| e.contains("signatureInvalid")), "{dead:?}");
    assert_eq!(case_at(&p.bela(), id).await, b);
    p.cleanup().await;
}
