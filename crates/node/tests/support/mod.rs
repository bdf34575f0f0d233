//! Two engines (MiLa and BeLa) on their own databases — SQLite files or PostgreSQL schemas — wired through an
//! in-process transport that can be cut, lose answers, or answer with an HTTP error; either engine can be
//! restarted on its database (as after a crash: nothing in memory survives).
#![allow(dead_code)] // each test binary uses a part

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sdx_crypto::{Alg, PrivateKey};
use sdx_model::sample::{self, BELA, MILA};
use sdx_model::*;
use sdx_node::engine::{Answer, Engine, Peer, Transport, TransportError};
use sdx_node::protocol::Identity;
use sdx_node::settings::DeliverySettings;
use sdx_store::{AnyStore, DeliveryState, Store, open_any};

pub type E = Engine<AnyStore>;

/// Where the two nodes keep their data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Delivers by calling the receiving engine directly.
#[derive(Clone)]
pub struct Loop {
    pub from: OrgKey,
    nodes: Arc<Mutex<HashMap<OrgKey, E>>>,
    /// Requests fail before they reach the receiver (connection refused).
    pub down: Arc<AtomicBool>,
    /// The receiver handles requests, but the answers are lost on the way back.
    pub lose_answers: Arc<AtomicBool>,
    /// Every request is answered with this HTTP error instead.
    pub fail_with: Arc<Mutex<Option<TransportError>>>,
    /// Every JWS that reached the receiver.
    pub sent: Arc<Mutex<Vec<String>>>,
}

fn answer(a: Answer) -> Result<Vec<u8>, TransportError> {
    match a {
        Answer::Receipt { jws, .. } => Ok(jws.into_bytes()),
        Answer::Problem { code, detail } => Err(TransportError::Status {
            status: if code == ErrorCode::UnknownSender { 403 } else { 400 },
            code: Some(code.to_string()),
            detail,
            retryable: false,
        }),
    }
}

impl Loop {
    fn node(&self, org: &OrgKey) -> Result<E, TransportError> {
        self.nodes.lock().unwrap().get(org).cloned().ok_or_else(|| TransportError::Network("no such node".into()))
    }

    fn before(&self) -> Result<(), TransportError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(TransportError::Network("connection refused".into()));
        }
        if let Some(e) = self.fail_with.lock().unwrap().clone() {
            return Err(e);
        }
        Ok(())
    }

    fn after<T>(&self, t: T) -> Result<T, TransportError> {
        if self.lose_answers.load(Ordering::SeqCst) {
            return Err(TransportError::Network("connection reset while reading the answer".into()));
        }
        Ok(t)
    }
}

impl Transport for Loop {
    async fn post(&self, peer: &Peer, jws: &str) -> Result<Vec<u8>, TransportError> {
        self.before()?;
        self.sent.lock().unwrap().push(jws.to_string());
        let node = self.node(&peer.org)?;
        let a = node.receive(jws.as_bytes(), &self.from).await.map_err(|e| TransportError::Status {
            status: 503,
            code: Some("internal".into()),
            detail: e.to_string(),
            retryable: true,
        })?;
        self.after(answer(a))?
    }

    /// Several messages in one call of the receiver's batch entry point (one transaction there).
    async fn post_batch(
        &self,
        peer: &Peer,
        jws: &[&str],
    ) -> Result<Vec<Result<Vec<u8>, TransportError>>, TransportError> {
        self.before()?;
        self.sent.lock().unwrap().extend(jws.iter().map(|j| j.to_string()));
        let node = self.node(&peer.org)?;
        let wires: Vec<&[u8]> = jws.iter().map(|j| j.as_bytes()).collect();
        let answers = node.receive_batch(&wires, &self.from).await.map_err(|e| TransportError::Status {
            status: 503,
            code: Some("internal".into()),
            detail: e.to_string(),
            retryable: true,
        })?;
        self.after(answers.into_iter().map(answer).collect())
    }
}

/// One node's fixed parts: enough to start it again on the same database.
struct NodeSpec {
    org: OrgKey,
    key_pem: String,
    url: String,
    schema: Option<String>,
    peer: Peer,
}

/// MiLa and BeLa.
pub struct Pair {
    pub db: Db,
    nodes: Arc<Mutex<HashMap<OrgKey, E>>>,
    specs: HashMap<OrgKey, NodeSpec>,
    pub to_bela: Loop,
    pub to_mila: Loop,
    pub delivery: DeliverySettings,
    _dir: tempfile::TempDir,
}

pub fn mila_org() -> OrgKey {
    OrgKey::parse(MILA).unwrap()
}
pub fn bela_org() -> OrgKey {
    OrgKey::parse(BELA).unwrap()
}

/// Fast retries for tests: 1 ms doubling to 5 ms.
pub fn fast() -> DeliverySettings {
    DeliverySettings { backoff_initial_ms: 1, backoff_max_ms: 5, ..DeliverySettings::default() }
}

impl Pair {
    pub async fn new(db: Db) -> Pair {
        Pair::with(db, fast()).await
    }

    pub async fn with(db: Db, delivery: DeliverySettings) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let (m_org, b_org) = (mila_org(), bela_org());
        let (m_key, b_key) = (PrivateKey::generate(Alg::Es256).unwrap(), PrivateKey::generate(Alg::Es256).unwrap());
        let location = |name: &str| match db {
            Db::Sqlite => (format!("sqlite://{}?mode=rwc", dir.path().join(format!("{name}.db")).display()), None),
            Db::Postgres => (sdx_testkit::pg::server_url().to_string(), Some(sdx_testkit::pg::schema_name())),
        };
        let spec = |org: &OrgKey, key: &PrivateKey, (url, schema): (String, Option<String>), peer: Peer| NodeSpec {
            org: org.clone(),
            key_pem: key.to_pkcs8_pem(),
            url,
            schema,
            peer,
        };
        let m_peer = Peer::new(b_org.clone(), "https://bela.invalid", b_key.public_key(Alg::Es256).unwrap());
        let b_peer = Peer::new(m_org.clone(), "https://mila.invalid", m_key.public_key(Alg::Es256).unwrap());
        let specs = HashMap::from([
            (m_org.clone(), spec(&m_org, &m_key, location("mila"), m_peer)),
            (b_org.clone(), spec(&b_org, &b_key, location("bela"), b_peer)),
        ]);
        let nodes = Arc::new(Mutex::new(HashMap::new()));
        let mk = |from: &OrgKey| Loop {
            from: from.clone(),
            nodes: nodes.clone(),
            down: Arc::new(AtomicBool::new(false)),
            lose_answers: Arc::new(AtomicBool::new(false)),
            fail_with: Arc::new(Mutex::new(None)),
            sent: Arc::new(Mutex::new(Vec::new())),
        };
        let pair = Pair { db, to_bela: mk(&m_org), to_mila: mk(&b_org), nodes, specs, delivery, _dir: dir };
        for org in [&m_org, &b_org] {
            pair.start(org).await;
        }
        pair
    }

    async fn start(&self, org: &OrgKey) {
        let s = &self.specs[org];
        let store = open_any(&s.url, s.schema.as_deref()).await.expect("open the node's store");
        let identity =
            Identity { org: s.org.clone(), name: None, signing_key: PrivateKey::from_pkcs8_pem(&s.key_pem).unwrap() };
        let engine = Engine::new(identity, store, vec![s.peer.clone()], self.delivery.clone());
        engine.release_leases().await.unwrap();
        self.nodes.lock().unwrap().insert(org.clone(), engine);
    }

    /// Restart a node on its database, as after `kill -9`: the old engine is dropped, a new one opened.
    pub async fn restart(&self, org: &OrgKey) {
        let old = self.nodes.lock().unwrap().remove(org);
        if let Some(old) = old {
            old.store().close().await;
        }
        self.start(org).await;
    }

    pub fn mila(&self) -> E {
        self.nodes.lock().unwrap()[&mila_org()].clone()
    }
    pub fn bela(&self) -> E {
        self.nodes.lock().unwrap()[&bela_org()].clone()
    }

    /// Deliver in both directions until neither side has anything due (waiting out backoffs), at most `rounds`.
    pub async fn settle(&self, rounds: usize) {
        for _ in 0..rounds {
            let m = self.mila().deliver_due(&self.to_bela, 500).await.unwrap();
            let b = self.bela().deliver_due(&self.to_mila, 500).await.unwrap();
            let pending = pending(&self.mila()).await + pending(&self.bela()).await;
            if m + b == 0 && pending == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(6)).await;
        }
    }

    /// Close both stores and drop PostgreSQL schemas.
    pub async fn cleanup(self) {
        for e in [self.mila(), self.bela()] {
            e.store().close().await;
        }
        for s in self.specs.values() {
            if let Some(schema) = &s.schema {
                sdx_testkit::pg::drop_schema(schema).await;
            }
        }
    }
}

pub async fn pending(e: &E) -> usize {
    e.store().list_deliveries(Some(DeliveryState::Pending), 500).await.unwrap().len()
}

pub fn fresh_case() -> Case {
    let mut c = sample::typical_case();
    c.case_id = CaseId::new_random();
    c
}

pub fn upd(status: Status, pending: Option<PendingReason>) -> Body {
    Body::Update(Update { revision: 0, status: Some(status), pending_reason: pending, ..Update::default() })
}

pub async fn case_at(e: &E, id: CaseId) -> Case {
    e.store().get_case(id).await.unwrap().expect("case stored").case
}

pub fn solution(by: &OrgKey) -> Solution {
    Solution {
        code: ResolutionCode::Fixed,
        text: "Upload-Grenze auf 20 MB erhöht.".into(),
        resolved_at: Timestamp::now(),
        resolved_by: by.clone(),
    }
}

pub fn note(by: &OrgKey, text: &str) -> JournalEntry {
    JournalEntry {
        id: ItemId::new_random(),
        visibility: Visibility::Public,
        author: Author { organisation: by.clone(), name: None },
        created_at: Timestamp::now(),
        text: text.into(),
    }
}

impl Pair {
    /// `partner` verifies `org`'s messages with exactly these public keys from now on (restarted, as after a
    /// change of its settings: the first key and `other_keys`, as a JWK set in a peer's file gives them).
    pub async fn trust(&mut self, partner: &OrgKey, keys: Vec<sdx_crypto::PublicKey>) {
        let mut keys = keys.into_iter();
        let spec = self.specs.get_mut(partner).unwrap();
        spec.peer.key = keys.next().expect("at least one key");
        spec.peer.other_keys = keys.collect();
        self.restart(partner).await;
    }

    /// `org` signs with `key` from now on (restarted on its database with the new key in its settings).
    pub async fn sign_with(&mut self, org: &OrgKey, key: &PrivateKey) {
        self.specs.get_mut(org).unwrap().key_pem = key.to_pkcs8_pem();
        self.restart(org).await;
    }

    /// MiLa's identity (to seal messages by hand, as a misbehaving node would).
    pub fn mila_identity(&self) -> Identity {
        let s = &self.specs[&mila_org()];
        Identity { org: s.org.clone(), name: None, signing_key: PrivateKey::from_pkcs8_pem(&s.key_pem).unwrap() }
    }
}
