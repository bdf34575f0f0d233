//! SQLite store throughput with durable commits (WAL, `synchronous=FULL`), on a temporary file:
//! - `micro/select_in_tx`: one indexed `SELECT` inside an open transaction;
//!   `micro/empty_tx`: begin, one `SELECT`, commit (nothing to sync); `micro/one_row_tx`: one small insert per
//!   durable commit;
//! - `forward_tx/1`: one outbound forward as the node writes it — insert case, next sequence number, insert
//!   message (≈ 3 KB JWS), enqueue delivery, timeline event — in one transaction, one commit per case;
//! - `forward_tx/10`: the same for 10 cases per transaction (group commit), to show what batching buys;
//! - `forward_tx_concurrent/16`: 16 tasks each committing single-case transactions (the writer queue);
//! - `claim_mark_delivered/16`: claim 16 due deliveries in one transaction, then one transaction per delivery
//!   storing the receipt and marking it delivered (one commit per delivery plus the claim).
//!
//! Run: `cargo bench -p sdx-store -- --quick`. Throughput is in cases (elements) per second.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sdx_model::{CaseId, MessageId, MessageType, OrgKey, ReceiptResult, Sha256Hex, Timestamp, sample};
use sdx_store::{
    CaseRecord, Delivery, DeliveryState, Direction, EventKind, MessageRecord, MessageState, OurRole, ReceiptRecord,
    SqliteStore, Store, StoreTx, TimelineEvent,
};

struct Fixture {
    peer: OrgKey,
    case: sdx_model::Case,
    jws: String,
    digest: Sha256Hex,
}

impl Fixture {
    fn new() -> Fixture {
        let forward = sample::typical_forward();
        let json = serde_json::to_string(&forward).expect("sample serializes");
        // About the size of the signed message: base64url of the JSON plus header and signature.
        let jws = format!("eyJhbGciOiJFUzI1NiJ9.{}.{}", "x".repeat(json.len() * 4 / 3), "s".repeat(86));
        Fixture {
            peer: OrgKey::parse(sample::BELA).expect("valid"),
            case: sample::typical_case(),
            jws,
            digest: Sha256Hex::parse("ab".repeat(32)).expect("valid"),
        }
    }

    async fn forward<T: StoreTx>(&self, tx: &mut T, now: Timestamp) -> MessageId {
        let mut case = self.case.clone();
        case.case_id = CaseId::new_random();
        let rec = CaseRecord {
            case,
            partner: self.peer.clone(),
            our_role: OurRole::Originator,
            updated_at: now,
            owner: None,
        };
        tx.put_case(&rec, None).await.expect("put case");
        let seq = tx.next_out_sequence(rec.case.case_id, &self.peer).await.expect("sequence");
        let message_id = MessageId::new_random();
        tx.insert_message(&MessageRecord {
            message_id,
            case_id: Some(rec.case.case_id),
            direction: Direction::Out,
            peer: self.peer.clone(),
            message_type: MessageType::Forward,
            sequence: Some(seq),
            created_at: now,
            stored_at: now,
            jws: self.jws.clone(),
            digest: self.digest.clone(),
            state: MessageState::Pending,
        })
        .await
        .expect("insert message");
        tx.enqueue(&Delivery {
            message_id,
            peer: self.peer.clone(),
            state: DeliveryState::Pending,
            attempts: 0,
            created_at: now,
            next_attempt_at: now,
            last_error: None,
            delivered_at: None,
        })
        .await
        .expect("enqueue");
        tx.add_event(&TimelineEvent {
            case_id: rec.case.case_id,
            at: now,
            kind: EventKind::MessageSent,
            message_id: Some(message_id),
            detail: "forward #1".into(),
        })
        .await
        .expect("event");
        message_id
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
    let store = rt.block_on(SqliteStore::open(&url)).expect("open");
    let fx = std::sync::Arc::new(Fixture::new());

    let mut g = c.benchmark_group("micro");
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1));
    g.bench_function("select_in_tx", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut tx = store.begin().await.expect("begin");
                let case = CaseId::new_random();
                let start = Instant::now();
                for _ in 0..iters {
                    tx.get_case(case).await.expect("select");
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("empty_tx", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut tx = store.begin().await.expect("begin");
                    tx.get_case(CaseId::new_random()).await.expect("select");
                    tx.commit().await.expect("commit");
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("one_row_tx", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut tx = store.begin().await.expect("begin");
                    let ev = TimelineEvent {
                        case_id: CaseId::new_random(),
                        at: Timestamp::now(),
                        kind: EventKind::StatusChanged,
                        message_id: None,
                        detail: "x".into(),
                    };
                    tx.add_event(&ev).await.expect("event");
                    tx.commit().await.expect("commit");
                }
                start.elapsed()
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("forward_tx");
    g.measurement_time(Duration::from_secs(5));
    for per_tx in [1u64, 10] {
        g.throughput(Throughput::Elements(per_tx));
        g.bench_function(per_tx.to_string(), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let mut tx = store.begin().await.expect("begin");
                        for _ in 0..per_tx {
                            fx.forward(&mut tx, Timestamp::now()).await;
                        }
                        tx.commit().await.expect("commit");
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("forward_tx_concurrent");
    g.measurement_time(Duration::from_secs(5));
    let tasks = 16u64;
    g.throughput(Throughput::Elements(tasks));
    g.bench_function(tasks.to_string(), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let handles: Vec<_> = (0..tasks)
                    .map(|_| {
                        let (store, fx) = (store.clone(), fx.clone());
                        tokio::spawn(async move {
                            for _ in 0..iters {
                                let mut tx = store.begin().await.expect("begin");
                                fx.forward(&mut tx, Timestamp::now()).await;
                                tx.commit().await.expect("commit");
                            }
                        })
                    })
                    .collect();
                for h in handles {
                    h.await.expect("task");
                }
                start.elapsed()
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("claim_mark_delivered");
    g.measurement_time(Duration::from_secs(5));
    let batch = 16u32;
    g.throughput(Throughput::Elements(u64::from(batch)));
    g.bench_function(batch.to_string(), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                // Not timed: queue what this run will claim (and drain what earlier runs left due).
                let mut tx = store.begin().await.expect("begin");
                let far = Timestamp::from_offset_date_time(Timestamp::now().as_offset_date_time() + time_hour());
                let farther = Timestamp::from_offset_date_time(far.as_offset_date_time() + time_hour());
                while !tx.claim_due(far, farther, 500).await.expect("drain").is_empty() {}
                for _ in 0..iters * u64::from(batch) {
                    fx.forward(&mut tx, Timestamp::now()).await;
                }
                tx.commit().await.expect("commit");

                let start = Instant::now();
                for _ in 0..iters {
                    let now = Timestamp::now();
                    let mut tx = store.begin().await.expect("begin");
                    let claimed = tx.claim_due(now, far, batch).await.expect("claim");
                    tx.commit().await.expect("commit");
                    for d in claimed {
                        let mut tx = store.begin().await.expect("begin");
                        let receipt = ReceiptRecord {
                            for_message: d.message_id,
                            direction: Direction::In,
                            result: ReceiptResult::Accepted,
                            jws: "eyJhbGciOiJFUzI1NiJ9.cmVjZWlwdA.c2ln".into(),
                            received_at: now,
                        };
                        tx.mark_delivered(d.message_id, &receipt).await.expect("delivered");
                        tx.commit().await.expect("commit");
                    }
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    rt.block_on(store.close());
}

fn time_hour() -> time::Duration {
    time::Duration::hours(1)
}

criterion_group!(benches, bench);
criterion_main!(benches);
