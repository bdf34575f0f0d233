//! The node's engine: every local change and every received message goes through here, each in one store
//! transaction, so that the case, the outbox, the inbox and the receipts never disagree.
//!
//! # Layout
//! - `local` — this organisation's changes ([`Engine::forward`], [`Engine::change`]): applied to our copy with
//!   the lifecycle rules and, in the same transaction, sealed into the outbox with the next sequence number.
//! - `inbox` — messages from peers ([`Engine::receive`], [`Engine::receive_batch`]): opened (verified),
//!   deduplicated, ordered by sequence (early ones held), applied at their place in the case's one order of
//!   changes, committed with their signed receipt — and only then answered.
//! - `outbox` — delivery ([`Engine::deliver_due`], [`Engine::deliver`]): claims (a case's next message only once
//!   the one before is delivered or rejected; never past a dead letter), sends through a [`Transport`], judges the
//!   answer and records the outcome — the one owner of a delivery's state: delivered, rejected (the change lost),
//!   retried with backoff and jitter (transient failures only, bounded by attempts and age) or dead (the case is
//!   blocked until an operator retries or skips it).
//! - `notices` — service notices ([`Engine::publish_notice`], [`Engine::end_notice`]): stored as the latest
//!   version and, in the same transaction, one sealed message per recipient ([`Engine::notice_recipients`]) put
//!   into the outbox; received ones are stored by `inbox` in the transaction that answers them.
//! - `escalate` — chains of parties: a case escalated to the vendor as a child case ([`Engine::escalate`]), the
//!   parent following the child's status, closing flowing down.
//! - `reroute` — a case its assignee rejected as not responsible goes, in the same transaction, to the next
//!   organisation the directory names (`crate::directory::route`), or stays here with the reason.
//! - `replay` — recomputing a case from its messages in the one order of [`sdx_model::convergence`], when
//!   concurrent changes of both organisations met; both copies end identical (`docs/protocol.md`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sdx_crypto::PublicKey;
use sdx_model::lifecycle::Refusal;
use sdx_model::{Case, CaseId, ErrorCode, MessageId, OrgKey, ReceiptResult, Timestamp};
use sdx_store::{EventKind, Store, TimelineEvent};

use crate::metrics::Metrics;
use crate::protocol::Identity;
use crate::settings::DeliverySettings;

pub use escalate::Escalated;
pub use local::Forwarding;
pub use notices::Published;
pub use outbox::RelayedReceipt;
pub use relay::{Accepted, Relayed};

mod escalate;
mod inbox;
mod local;
mod notices;
mod outbox;
mod relay;
mod replay;
mod reroute;

/// A partner node as the engine knows it: from the settings' `[[peers]]` or from the directory.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Organisation key.
    pub org: OrgKey,
    /// Base URL of its peer endpoint.
    pub url: String,
    /// Its public signing key (the first, if it has several).
    pub key: PublicKey,
    /// Further signing keys it may use (a key rollover published in the directory); picked by the JWS `kid`.
    pub other_keys: Vec<PublicKey>,
    /// What its workflow can take, as the directory publishes it (`None`: everything SDX allows).
    pub capabilities: Option<sdx_directory::Capabilities>,
    /// Message types its node accepts (`None`: every type).
    pub message_types: Option<Vec<sdx_model::MessageType>>,
    /// The directory version it comes from (`None`: from the settings).
    pub directory_version: Option<u64>,
    /// The hub it is reached through (then `url` is the hub's, and messages travel in envelopes).
    pub via_hub: Option<OrgKey>,
    /// Its published encryption key: messages through a hub are encrypted to it end to end.
    pub encryption_key: Option<PublicKey>,
}

impl Peer {
    /// A peer from the settings: one key, no published capabilities.
    #[must_use]
    pub fn new(org: OrgKey, url: impl Into<String>, key: PublicKey) -> Peer {
        Peer {
            org,
            url: url.into(),
            key,
            other_keys: Vec::new(),
            capabilities: None,
            message_types: None,
            directory_version: None,
            via_hub: None,
            encryption_key: None,
        }
    }

    /// The key to verify `jws` with: the one its `kid` names, else the first.
    #[must_use]
    pub fn key_for(&self, jws: &[u8]) -> &PublicKey {
        if self.other_keys.is_empty() {
            return &self.key;
        }
        let kid = std::str::from_utf8(jws)
            .ok()
            .and_then(|t| sdx_crypto::jws::decode_unverified(t.trim()).ok())
            .and_then(|(h, _)| h.kid);
        kid.and_then(|k| std::iter::once(&self.key).chain(&self.other_keys).find(|p| p.kid() == k)).unwrap_or(&self.key)
    }
}

/// The peers a node knows, replaced as a whole when the directory is reloaded.
type PeerBook = Arc<HashMap<OrgKey, Arc<Peer>>>;

/// What went wrong in the engine. The HTTP layers decide what each means to their callers.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The change is not allowed (lifecycle, rules, permissions): a typed, expected answer.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// No such case here.
    #[error("case {0} is not known here")]
    NotFound(CaseId),
    /// This node never published a notice with this id.
    #[error("this node never published a notice {0}")]
    UnknownNotice(sdx_model::ItemId),
    /// No such peer configured.
    #[error("no peer {0} is configured")]
    UnknownPeer(OrgKey),
    /// The case changed meanwhile (optimistic concurrency); retry.
    #[error("the case changed meanwhile; retry")]
    Conflict,
    /// Storage failed.
    #[error("storage: {0}")]
    Store(sdx_store::Error),
    /// Signing failed.
    #[error("signing: {0}")]
    Crypto(#[from] sdx_crypto::Error),
}

impl From<sdx_store::Error> for EngineError {
    fn from(e: sdx_store::Error) -> Self {
        match e {
            sdx_store::Error::Conflict => EngineError::Conflict,
            other => EngineError::Store(other),
        }
    }
}

/// A message that was committed to the outbox.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Its id.
    pub message_id: MessageId,
    /// The case as it is now at this node.
    pub case: Case,
    /// The change was made before, by an earlier request with the same idempotency key: nothing was applied now,
    /// `message_id` is the earlier change's message.
    pub replayed: bool,
}

/// The answer to a peer's POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A signed receipt (positive or negative), the business answer.
    Receipt {
        /// The receipt JWS.
        jws: String,
        /// Accepted or rejected.
        result: ReceiptResult,
    },
    /// No receipt can be made (unknown peer, not a JWS): the HTTP layer answers with an RFC 9457 problem whose
    /// status follows from the code.
    Problem {
        /// Stable error code.
        code: ErrorCode,
        /// Explanation.
        detail: String,
    },
}

/// Why a message could not be handed over and answered with a receipt. Whether a retry can help decides between
/// a later attempt and a dead letter ([`TransportError::is_transient`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The peer could not be reached or its answer did not arrive whole (connection, TLS handshake, timeout).
    #[error("{0}")]
    Network(String),
    /// The peer answered with an HTTP error status (normally an RFC 9457 problem).
    #[error("HTTP {status}{}: {detail}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Status {
        /// The HTTP status.
        status: u16,
        /// The problem's SDX error code, if it had one.
        code: Option<String>,
        /// The problem's detail (or the start of the body).
        detail: String,
        /// Whether a retry can help: the problem's `retryable` member, else 5xx, 408 and 429.
        retryable: bool,
    },
    /// The answer breaks the protocol (not a batch answer, another number of results than messages).
    #[error("{0}")]
    Protocol(String),
    /// A hub took the message into its outbox (HTTP 202) and will push the reader's receipt when it has it
    /// (`POST /sdx/v1/receipts`, `crate::hub`): not delivered yet, and nothing to retry now.
    #[error("queued at the hub: {0}")]
    Queued(String),
}

impl TransportError {
    /// Whether a later attempt can succeed: network errors, and HTTP errors that are retryable.
    pub fn is_transient(&self) -> bool {
        match self {
            TransportError::Network(_) => true,
            TransportError::Status { retryable, .. } => *retryable,
            TransportError::Protocol(_) => false,
            TransportError::Queued(_) => true,
        }
    }

    /// Whether an HTTP error status says that a retry can help, when the answer does not say so itself: 5xx, 408
    /// (timeout) and 429 (too many requests).
    pub fn retryable_status(status: u16) -> bool {
        status >= 500 || status == 408 || status == 429
    }

    /// The error for an HTTP answer with `status` and `body` (an RFC 9457 problem, or anything).
    pub fn from_answer(status: u16, body: &[u8]) -> TransportError {
        let problem: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let member = |name: &str| problem.as_ref().and_then(|p| p.get(name));
        let code = member("errorCode").and_then(|c| c.as_str()).map(str::to_string);
        let detail = match member("detail").and_then(|d| d.as_str()) {
            Some(d) => d.chars().take(300).collect(),
            None => String::from_utf8_lossy(body).chars().take(300).collect(),
        };
        let retryable = member("retryable")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(TransportError::retryable_status(status));
        TransportError::Status { status, code, detail, retryable }
    }
}

/// Sending sealed messages to a peer and getting the answers back.
pub trait Transport: Send + Sync {
    /// POST the JWS to the peer; `Ok` carries the response body of a 200 answer (the receipt).
    fn post(&self, peer: &Peer, jws: &str)
    -> impl std::future::Future<Output = Result<Vec<u8>, TransportError>> + Send;

    /// POST several JWS to the peer in one request; `Ok` carries one answer per message, in order: the receipt,
    /// or why there is none. The default sends them one by one.
    fn post_batch(
        &self,
        peer: &Peer,
        jws: &[&str],
    ) -> impl std::future::Future<Output = Result<Vec<Result<Vec<u8>, TransportError>>, TransportError>> + Send {
        async move {
            let mut out = Vec::with_capacity(jws.len());
            for j in jws {
                out.push(self.post(peer, j).await);
            }
            Ok(out)
        }
    }

    /// Push a reader's receipt to the author of the message it answers (what a hub does for a message it
    /// queued). The default cannot: a transport that is no hub's.
    fn push_receipt(
        &self,
        author: &Peer,
        receipt: &str,
    ) -> impl std::future::Future<Output = Result<(), TransportError>> + Send {
        let _ = receipt;
        let e = TransportError::Protocol(format!("this transport cannot push receipts to {}", author.org));
        async move { Err(e) }
    }
}

struct Inner<S> {
    me: Identity,
    store: S,
    /// The peers now (a snapshot is taken per use; [`Engine::set_peers`] swaps it).
    peers: std::sync::RwLock<PeerBook>,
    /// The key that decrypts messages reaching this node through a hub (`crate::envelope`), if it has one.
    decryption_key: std::sync::OnceLock<sdx_crypto::PrivateKey>,
    /// Content keys of the envelopes that reached this node, unwrapped once per sender's key (`crate::envelope`).
    unwrapped: sdx_crypto::jwe::UnwrapCache,
    /// The content key this node encrypts envelopes with, per reader (wrapped once to its key; renewed when spent
    /// or when the reader's key changes).
    content_keys: std::sync::Mutex<HashMap<OrgKey, Arc<sdx_crypto::jwe::ContentKey>>>,
    /// The directory of responsibilities, if the node routes by one (`crate::directory`).
    directory: Option<Arc<sdx_directory::DirectoryHolder>>,
    delivery: DeliverySettings,
    /// Signalled after a commit that put something into the outbox.
    wake: Arc<tokio::sync::Notify>,
    /// Signalled after messages from a peer or local changes were committed (change feed requests wait on it).
    feed: tokio::sync::Notify,
    /// Callers waiting for a message's receipt ([`Engine::wait_delivered`]): `true` when it was delivered.
    waiters: std::sync::Mutex<HashMap<MessageId, Vec<tokio::sync::oneshot::Sender<bool>>>>,
    /// Where deliveries and applied messages are counted.
    metrics: Metrics,
    /// Which of the organisation's ticket systems owns a case that arrives (`crate::clients`); set once.
    owners: std::sync::OnceLock<crate::clients::Owners>,
    /// Whether a new case the directory gives to others is rejected as not responsible (`reroute`).
    check_responsibility: std::sync::atomic::AtomicBool,
}

/// The engine of one node. Cheap to clone.
pub struct Engine<S: Store> {
    inner: Arc<Inner<S>>,
}

impl<S: Store> Clone for Engine<S> {
    fn clone(&self) -> Self {
        Engine { inner: Arc::clone(&self.inner) }
    }
}

fn book(peers: Vec<Peer>) -> PeerBook {
    Arc::new(peers.into_iter().map(|p| (p.org.clone(), Arc::new(p))).collect())
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn later(t: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_offset_date_time(t.as_offset_date_time() + d)
}

/// How many senders' content keys a node keeps unwrapped (then it starts afresh; each costs one RSA operation).
const UNWRAPPED_KEYS: usize = 4096;

/// Apply `f` to every item, results in the items' order: for two or more items on a machine with more than one
/// core, the second half on a thread of its own while this thread does the first. For CPU work on each item
/// alone (verifying signatures, signing receipts) that a batch would otherwise do one after the other; the
/// thread lives only as long as the call.
fn split_work<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get));
    if items.len() < 2 || cores < 2 {
        return items.iter().map(&f).collect();
    }
    let (mine, theirs) = items.split_at(items.len().div_ceil(2));
    // The other thread logs in the caller's span (request, peer).
    let span = tracing::Span::current();
    std::thread::scope(|s| {
        let other = s.spawn(|| {
            let _entered = span.enter();
            theirs.iter().map(&f).collect::<Vec<R>>()
        });
        let mut out: Vec<R> = mine.iter().map(&f).collect();
        match other.join() {
            Ok(rest) => out.extend(rest),
            Err(panic) => std::panic::resume_unwind(panic),
        }
        out
    })
}

fn refusal(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into() }
}

fn event(case_id: CaseId, kind: EventKind, message_id: Option<MessageId>, detail: String) -> TimelineEvent {
    TimelineEvent { case_id, at: now(), kind, message_id, detail }
}

fn status_event(case_id: CaseId, old: &Case, new: &Case, message_id: Option<MessageId>) -> Option<TimelineEvent> {
    (old.status != new.status)
        .then(|| event(case_id, EventKind::StatusChanged, message_id, format!("{} → {}", old.status, new.status)))
}

impl<S: Store> Engine<S> {
    /// An engine for this node, with a registry of its own for its metrics.
    pub fn new(me: Identity, store: S, peers: Vec<Peer>, delivery: DeliverySettings) -> Self {
        Engine::with_metrics(me, store, peers, delivery, Metrics::new())
    }

    /// An engine for this node that records its metrics into `metrics` (the node's registry, see
    /// [`crate::metrics`]).
    pub fn with_metrics(
        me: Identity,
        store: S,
        peers: Vec<Peer>,
        delivery: DeliverySettings,
        metrics: Metrics,
    ) -> Self {
        Engine::with_directory(me, store, peers, None, delivery, metrics)
    }

    /// [`Engine::with_metrics`] for a node that routes by a directory of responsibilities: `peers` are the
    /// settings' and the directory's together (see [`crate::directory::peers`]).
    pub fn with_directory(
        me: Identity,
        store: S,
        peers: Vec<Peer>,
        directory: Option<Arc<sdx_directory::DirectoryHolder>>,
        delivery: DeliverySettings,
        metrics: Metrics,
    ) -> Self {
        let peers = std::sync::RwLock::new(book(peers));
        let wake = Arc::new(tokio::sync::Notify::new());
        let waiters = std::sync::Mutex::new(HashMap::new());
        let feed = tokio::sync::Notify::new();
        let decryption_key = std::sync::OnceLock::new();
        Engine {
            inner: Arc::new(Inner {
                me,
                store,
                peers,
                decryption_key,
                unwrapped: sdx_crypto::jwe::UnwrapCache::new(UNWRAPPED_KEYS),
                content_keys: std::sync::Mutex::new(HashMap::new()),
                directory,
                delivery,
                wake,
                feed,
                waiters,
                metrics,
                owners: std::sync::OnceLock::new(),
                check_responsibility: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Replace the peers (after the directory was reloaded). Messages already in the outbox go to the new
    /// addresses; a peer that is gone makes its deliveries fail as "no longer configured".
    pub fn set_peers(&self, peers: Vec<Peer>) {
        let new = book(peers);
        *self.inner.peers.write().unwrap_or_else(std::sync::PoisonError::into_inner) = new;
    }

    /// The content key for envelopes to `reader`, whose encryption key is `to`: the one in use, or a new one if
    /// there is none, it is spent, or the reader's key changed.
    ///
    /// # Errors
    /// [`sdx_crypto::Error`] if `to` is no RSA-OAEP-256 key.
    pub(crate) fn content_key(
        &self,
        reader: &OrgKey,
        to: &sdx_crypto::PublicKey,
    ) -> Result<Arc<sdx_crypto::jwe::ContentKey>, sdx_crypto::Error> {
        let mut keys = self.inner.content_keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(k) = keys.get(reader).filter(|k| k.kid() == to.kid() && !k.is_spent()) {
            return Ok(Arc::clone(k));
        }
        let k = Arc::new(sdx_crypto::jwe::ContentKey::new(to)?);
        keys.insert(reader.clone(), Arc::clone(&k));
        Ok(k)
    }

    /// Set who owns the cases that arrive from partners (from the API clients' settings; once, later calls
    /// change nothing). Without it an arriving case has no owner.
    pub fn set_owners(&self, owners: crate::clients::Owners) {
        let _ = self.inner.owners.set(owners);
    }

    /// Reject new cases the directory gives to other organisations as not responsible (`[directory]
    /// check_responsibility`), or not.
    pub fn set_check_responsibility(&self, on: bool) {
        self.inner.check_responsibility.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn checks_responsibility(&self) -> bool {
        self.inner.check_responsibility.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The owner of a case that arrives from a partner, and why (`crate::clients::Owners::for_incoming`).
    pub(crate) fn owner_for_incoming(&self, case: &Case) -> Option<(String, String)> {
        self.inner.owners.get().and_then(|o| o.for_incoming(case))
    }

    /// Set the key that decrypts messages reaching this node through a hub (once; later calls change nothing).
    pub fn set_decryption_key(&self, key: sdx_crypto::PrivateKey) {
        let _ = self.inner.decryption_key.set(key);
    }

    /// The peer with this organisation key, now.
    pub fn peer(&self, org: &OrgKey) -> Option<Arc<Peer>> {
        self.inner.peers.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(org).cloned()
    }

    /// Every peer now, by organisation key.
    pub fn peers(&self) -> Vec<Arc<Peer>> {
        let book = self.inner.peers.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let mut all: Vec<Arc<Peer>> = book.values().cloned().collect();
        all.sort_by(|a, b| a.org.as_str().cmp(b.org.as_str()));
        all
    }

    /// The directory this node routes by, if it has one.
    pub fn directory(&self) -> Option<&Arc<sdx_directory::DirectoryHolder>> {
        self.inner.directory.as_ref()
    }

    /// Where this engine records its metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Wait until the peer's signed receipt for `id` (a message this node sent) is stored, or `timeout` passes.
    /// Returns whether it was delivered (a positive receipt; `false` for a negative one, a dead letter or the
    /// timeout).
    pub async fn wait_delivered(&self, id: MessageId, timeout: Duration) -> Result<bool, EngineError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Ok(mut w) = self.inner.waiters.lock() {
            w.entry(id).or_default().push(tx);
        }
        // It may have been answered before we registered.
        if let Some(m) = self.inner.store.get_message(id).await? {
            use sdx_store::MessageState::*;
            match m.state {
                Delivered => {
                    self.release_waiters(id, true);
                    return Ok(true);
                }
                Rejected | Dead | Skipped | Superseded => {
                    self.release_waiters(id, false);
                    return Ok(false);
                }
                Pending | Held | Applied | Refused => {}
            }
        }
        Ok(tokio::time::timeout(timeout, rx).await.ok().and_then(Result::ok).unwrap_or(false))
    }

    fn release_waiters(&self, id: MessageId, delivered: bool) {
        let senders = self.inner.waiters.lock().ok().and_then(|mut w| w.remove(&id)).unwrap_or_default();
        for s in senders {
            let _ = s.send(delivered);
        }
    }

    /// Signalled whenever a commit put a message into the outbox (the delivery worker waits on it).
    pub fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.inner.wake)
    }

    /// Signalled (`notify_waiters`) by the HTTP surfaces after messages from a peer or local changes were
    /// committed: change feed requests wait on it instead of only polling the store.
    pub fn feed_signal(&self) -> &tokio::sync::Notify {
        &self.inner.feed
    }

    /// This node's organisation.
    pub fn org(&self) -> &OrgKey {
        &self.inner.me.org
    }

    /// Whether `org` is a configured peer of this node.
    pub fn is_peer(&self, org: &OrgKey) -> bool {
        self.peer(org).is_some()
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn split_work_keeps_the_order_and_shares_the_work() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let here = std::thread::current().id();
        for n in [0_usize, 1, 2, 3, 17] {
            let items: Vec<usize> = (0..n).collect();
            let out = super::split_work(&items, |i| (i * 2, std::thread::current().id()));
            let values: Vec<usize> = out.iter().map(|(v, _)| *v).collect();
            assert_eq!(values, items.iter().map(|i| i * 2).collect::<Vec<_>>(), "{n} items");
            let elsewhere = out.iter().filter(|(_, t)| *t != here).count();
            // The second half on another thread (two or more items, two or more cores), the first here.
            let expected = if n >= 2 && cores >= 2 { n / 2 } else { 0 };
            assert_eq!(elsewhere, expected, "{n} items");
            assert!(out[..n - elsewhere].iter().all(|(_, t)| *t == here));
        }
    }
}
