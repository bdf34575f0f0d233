//! Two engines (MiLa and BeLa), each on its own SQLite file, wired through an in-process transport: use cases
//! 2.1 and 2.2 end to end, duplicates, gaps, replays and refusals. (The same over real HTTP and mutual TLS
//! between real processes is in the node's integration tests.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sdx_crypto::{Alg, PrivateKey};
use sdx_model::sample::{self, BELA, MILA};
use sdx_model::*;
use sdx_node::engine::{Answer, Engine, Peer, Transport};
use sdx_node::protocol::Identity;
use sdx_node::settings::DeliverySettings;
use sdx_store::{MessageState, SqliteStore, Store};

type E = Engine<SqliteStore>;

/// Delivers by calling the receiving engine directly; can drop or duplicate traffic on request.
#[derive(Clone)]
struct Loop {
    from: OrgKey,
    nodes: Arc<Mutex<HashMap<OrgKey, E>>>,
    down: Arc<Mutex<bool>>,
    sent: Arc<Mutex<Vec<String>>>,
}

impl Transport for Loop {
    async fn post(&self, peer: &Peer, jws: &str) -> Result<Vec<u8>, String> {
        if *self.down.lock().unwrap() {
            return Err("connection refused".into());
        }
        self.sent.lock().unwrap().push(jws.to_string());
        let node = self.nodes.lock().unwrap().get(&peer.org).cloned().ok_or("no such node")?;
        match node.receive(jws.as_bytes(), &self.from).await.map_err(|e| e.to_string())? {
            Answer::Receipt { jws, .. } => Ok(jws.into_bytes()),
            Answer::Problem { code, detail } => Err(format!("{code}: {detail}")),
        }
    }

    /// Several messages in one call of the receiver's batch entry point (one transaction there).
    async fn post_batch(&self, peer: &Peer, jws: &[&str]) -> Result<Vec<Result<Vec<u8>, String>>, String> {
        if *self.down.lock().unwrap() {
            return Err("connection refused".into());
        }
        self.sent.lock().unwrap().extend(jws.iter().map(|j| j.to_string()));
        let node = self.nodes.lock().unwrap().get(&peer.org).cloned().ok_or("no such node")?;
        let wires: Vec<&[u8]> = jws.iter().map(|j| j.as_bytes()).collect();
        let answers = node.receive_batch(&wires, &self.from).await.map_err(|e| e.to_string())?;
        Ok(answers
            .into_iter()
            .map(|a| match a {
                Answer::Receipt { jws, .. } => Ok(jws.into_bytes()),
                Answer::Problem { code, detail } => Err(format!("{code}: {detail}")),
            })
            .collect())
    }
}

struct Pair {
    mila: E,
    bela: E,
    to_bela: Loop,
    to_mila: Loop,
    _dir: tempfile::TempDir,
}

async fn pair() -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let (m_org, b_org) = (OrgKey::parse(MILA).unwrap(), OrgKey::parse(BELA).unwrap());
    let (m_key, b_key) = (PrivateKey::generate(Alg::Es256).unwrap(), PrivateKey::generate(Alg::Es256).unwrap());
    let (m_pub, b_pub) = (m_key.public_key(Alg::Es256).unwrap(), b_key.public_key(Alg::Es256).unwrap());
    let url = |n: &str| format!("sqlite://{}?mode=rwc", dir.path().join(n).display());
    let m_store = SqliteStore::open(&url("mila.db")).await.unwrap();
    let b_store = SqliteStore::open(&url("bela.db")).await.unwrap();
    let fast = DeliverySettings { backoff_initial_ms: 1, backoff_max_ms: 5, ..DeliverySettings::default() };
    let mila = Engine::new(
        Identity { org: m_org.clone(), name: None, signing_key: m_key },
        m_store,
        vec![Peer { org: b_org.clone(), url: "https://bela.invalid".into(), key: b_pub }],
        fast.clone(),
    );
    let bela = Engine::new(
        Identity { org: b_org.clone(), name: None, signing_key: b_key },
        b_store,
        vec![Peer { org: m_org.clone(), url: "https://mila.invalid".into(), key: m_pub }],
        fast,
    );
    let nodes = Arc::new(Mutex::new(HashMap::from([(m_org.clone(), mila.clone()), (b_org.clone(), bela.clone())])));
    let mk = |from: &OrgKey| Loop {
        from: from.clone(),
        nodes: nodes.clone(),
        down: Arc::new(Mutex::new(false)),
        sent: Arc::new(Mutex::new(Vec::new())),
    };
    Pair { to_bela: mk(&m_org), to_mila: mk(&b_org), mila, bela, _dir: dir }
}

fn fresh_case() -> Case {
    let mut c = sample::typical_case();
    c.case_id = CaseId::new_random();
    c
}

fn upd(status: Status, pending: Option<PendingReason>) -> Body {
    Body::Update(Update { revision: 0, status: Some(status), pending_reason: pending, ..Update::default() })
}

async fn case_at(e: &E, id: CaseId) -> Case {
    e.store().get_case(id).await.unwrap().expect("case stored").case
}

#[tokio::test]
async fn use_cases_forward_and_return_leave_both_sides_identical() {
    let p = pair().await;
    let case = fresh_case();
    let id = case.case_id;
    p.mila.forward(case, Some("Bitte prüfen".into())).await.unwrap();
    assert_eq!(p.mila.deliver_due(&p.to_bela, 10).await.unwrap(), 1);
    assert_eq!(case_at(&p.bela, id).await.status, Status::New);

    p.bela.change(id, upd(Status::InProgress, None)).await.unwrap();
    p.bela.change(id, upd(Status::Pending, Some(PendingReason::WaitingForRequester))).await.unwrap();
    assert_eq!(p.bela.deliver_due(&p.to_mila, 10).await.unwrap(), 2);
    assert_eq!(case_at(&p.mila, id).await.status, Status::Pending);

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
    p.mila.change(id, body).await.unwrap();
    assert_eq!(p.mila.deliver_due(&p.to_bela, 10).await.unwrap(), 1);

    let solution = Solution {
        code: ResolutionCode::Fixed,
        text: "Upload-Grenze auf 20 MB erhöht.".into(),
        resolved_at: Timestamp::now(),
        resolved_by: OrgKey::parse(BELA).unwrap(),
    };
    p.bela
        .change(id, Body::Resolve(Resolve { revision: 0, solution: solution.clone(), journal: vec![] }))
        .await
        .unwrap();
    p.bela.change(id, Body::HandBack(HandBack { revision: 0, solution: Some(solution), note: None })).await.unwrap();
    assert_eq!(p.bela.deliver_due(&p.to_mila, 10).await.unwrap(), 2);
    p.mila.change(id, Body::Close(Close { revision: 0, closure_code: None, note: None })).await.unwrap();
    assert_eq!(p.mila.deliver_due(&p.to_bela, 10).await.unwrap(), 1);

    let (m, b) = (case_at(&p.mila, id).await, case_at(&p.bela, id).await);
    assert_eq!(m.status, Status::Closed);
    assert_eq!(m, b, "both copies of the case are identical");
    assert_eq!(m.status_history.len(), 6);
    // Every message of both sides is delivered: nothing pending.
    for e in [&p.mila, &p.bela] {
        let pending = e.store().list_deliveries(Some(sdx_store::DeliveryState::Pending), 100).await.unwrap();
        assert!(pending.is_empty(), "{pending:?}");
    }
    assert!(!p.mila.store().timeline(id).await.unwrap().is_empty());
}

#[tokio::test]
async fn duplicates_are_acknowledged_again_and_applied_once() {
    let p = pair().await;
    let case = fresh_case();
    let id = case.case_id;
    p.mila.forward(case, None).await.unwrap();
    p.mila.deliver_due(&p.to_bela, 10).await.unwrap();
    let jws = p.to_bela.sent.lock().unwrap()[0].clone();
    let mila = OrgKey::parse(MILA).unwrap();
    let first = p.bela.store().timeline(id).await.unwrap().len();
    let again = p.bela.receive(jws.as_bytes(), &mila).await.unwrap();
    let Answer::Receipt { result, .. } = again else { panic!("{again:?}") };
    assert_eq!(result, ReceiptResult::Accepted);
    assert_eq!(p.bela.store().timeline(id).await.unwrap().len(), first, "nothing applied twice");
    assert_eq!(case_at(&p.bela, id).await.revision, 1);
}

#[tokio::test]
async fn a_gap_is_held_until_filled_and_a_receiver_that_was_down_gets_everything_in_order() {
    let p = pair().await;
    let case = fresh_case();
    let id = case.case_id;
    p.mila.forward(case, None).await.unwrap();
    p.mila.deliver_due(&p.to_bela, 10).await.unwrap();
    // MiLa is down: BeLa's three changes wait in its outbox.
    *p.to_mila.down.lock().unwrap() = true;
    p.bela.change(id, upd(Status::Acknowledged, None)).await.unwrap();
    p.bela.change(id, upd(Status::InProgress, None)).await.unwrap();
    p.bela.change(id, upd(Status::Pending, Some(PendingReason::WaitingForThirdParty))).await.unwrap();
    assert_eq!(p.bela.deliver_due(&p.to_mila, 10).await.unwrap(), 0);
    let failing = p.bela.store().list_deliveries(Some(sdx_store::DeliveryState::Pending), 10).await.unwrap();
    // Only the case's first message was tried; the later ones wait for it (a case's messages go in order).
    let mut tried: Vec<_> = Vec::new();
    for d in &failing {
        let seq = p.bela.store().get_message(d.message_id).await.unwrap().unwrap().sequence.unwrap();
        tried.push((seq, d.attempts > 0, d.last_error.is_some()));
    }
    tried.sort();
    assert_eq!(tried, [(1, true, true), (2, false, false), (3, false, false)], "{failing:?}");
    // MiLa is back. Deliver the messages in reverse order by hand (as a sender that does not keep the order
    // might): 3 and 2 are held, 1 fills the gap.
    *p.to_mila.down.lock().unwrap() = false;
    let mut out: Vec<_> = Vec::new();
    for d in failing {
        let m = p.bela.store().get_message(d.message_id).await.unwrap().unwrap();
        out.push((m.sequence.unwrap(), m.jws));
    }
    out.sort();
    let bela = OrgKey::parse(BELA).unwrap();
    for (seq, jws) in out.iter().rev() {
        let a = p.mila.receive(jws.as_bytes(), &bela).await.unwrap();
        assert!(matches!(a, Answer::Receipt { result: ReceiptResult::Accepted, .. }), "seq {seq}: {a:?}");
        let status = case_at(&p.mila, id).await.status;
        if *seq > 1 {
            assert_eq!(status, Status::New, "held messages are not applied before the gap is filled");
        }
    }
    let c = case_at(&p.mila, id).await;
    assert_eq!(c.status, Status::Pending);
    let hist: Vec<_> = c.status_history.iter().map(|s| s.status).collect();
    assert_eq!(hist, [Status::New, Status::Acknowledged, Status::InProgress, Status::Pending]);
    // The regular retry now finds them delivered already (same receipts) and finishes.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(p.bela.deliver_due(&p.to_mila, 10).await.unwrap(), 3);
}

#[tokio::test]
async fn forged_replayed_misaddressed_and_forbidden_messages_change_nothing() {
    let p = pair().await;
    let case = fresh_case();
    let id = case.case_id;
    p.mila.forward(case, None).await.unwrap();
    p.mila.deliver_due(&p.to_bela, 10).await.unwrap();
    let (mila, bela) = (OrgKey::parse(MILA).unwrap(), OrgKey::parse(BELA).unwrap());
    let before = case_at(&p.bela, id).await;
    let events = p.bela.store().timeline(id).await.unwrap().len();

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
    assert_eq!(negative(p.bela.receive(jws.as_bytes(), &other).await.unwrap()), ErrorCode::UnknownSender);
    // Signed by MiLa's key but arriving over BeLa's own identity: signature does not match the TLS peer's key.
    assert_eq!(negative(p.bela.receive(jws.as_bytes(), &bela).await.unwrap()), ErrorCode::UnknownSender);
    // A forged signature.
    let mut forged = jws.clone().into_bytes();
    let n = forged.len();
    forged[n - 5] = if forged[n - 5] == b'A' { b'B' } else { b'A' };
    assert_eq!(negative(p.bela.receive(&forged, &mila).await.unwrap()), ErrorCode::SignatureInvalid);
    // The originator may not set inProgress from new: refused, nothing stored but the refusal.
    let local = p.mila.change(id, upd(Status::InProgress, None)).await.unwrap_err();
    assert!(local.to_string().contains("notPermitted"), "{local}");
    assert_eq!(case_at(&p.bela, id).await, before);
    assert_eq!(p.bela.store().timeline(id).await.unwrap().len(), events);
    // Messages that BeLa has not seen remain unknown.
    let m = p.bela.store().get_message(MessageId::new_random()).await.unwrap();
    assert!(m.is_none());
    let (_, payload) = sdx_crypto::jws::decode_unverified(&jws).unwrap();
    let forwarded = sdx_codec::json::decode(&payload).unwrap();
    let stored = p.bela.store().get_message(forwarded.header.message_id).await.unwrap().unwrap();
    assert_eq!(stored.state, MessageState::Applied);
}
