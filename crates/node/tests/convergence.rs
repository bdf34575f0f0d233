//! Random interleavings of both organisations' changes, partitions, lost answers and restarts (model-based: each
//! side picks its next change from the lifecycle's vocabulary, whatever its copy says, and the engine decides).
//! After the link heals and everything is delivered, both copies of every case must be identical, every change
//! either applied on both sides or refused by the assignee side with a conflict in its author's timeline, and
//! nothing pending, held or dead.
//!
//! Each scenario is driven by a seed; a failure names it (`SDX_CONVERGENCE_SEED=<seed>` replays just that one).
//! `SDX_CONVERGENCE_SCENARIOS` sets how many run (default 60 on SQLite, 20 on PostgreSQL).

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use sdx_model::*;
use sdx_store::{DeliveryState, Direction, EventKind, MessageState, Store, StoreTx};

use support::*;

/// What a scenario saw, summed up over all scenarios (to show the test exercised what it claims to).
#[derive(Debug, Default)]
struct Stats {
    changes: usize,
    refused_locally: usize,
    conflicts: usize,
    restarts: usize,
    partitions: usize,
}

fn pick<T: Clone>(rng: &mut fastrand::Rng, xs: &[T]) -> T {
    xs[rng.usize(..xs.len())].clone()
}

/// A change the MiLa (originator) might make.
fn mila_change(rng: &mut fastrand::Rng) -> Body {
    let mila = mila_org();
    match rng.u8(..6) {
        0 | 1 => Body::Update(Update {
            revision: 0,
            journal: vec![note(&mila, &format!("Nachtrag {}", rng.u32(..)))],
            ..Update::default()
        }),
        2 => Body::Update(Update {
            revision: 0,
            status: Some(Status::InProgress),
            journal: vec![note(&mila, "Antwort der Bürgerin")],
            ..Update::default()
        }),
        3 => upd(Status::Cancelled, None),
        4 => Body::Close(Close { revision: 0, closure_code: None, note: Some("erledigt".into()) }),
        _ => Body::Reopen(Reopen { revision: 0, reason: "Fehler tritt wieder auf".into() }),
    }
}

/// A change the BeLa (assignee side) might make.
fn bela_change(rng: &mut fastrand::Rng) -> Body {
    let bela = bela_org();
    match rng.u8(..9) {
        0 => upd(Status::Acknowledged, None),
        1 => upd(Status::InProgress, None),
        2 => upd(
            Status::Pending,
            Some(pick(rng, &[PendingReason::WaitingForRequester, PendingReason::WaitingForThirdParty])),
        ),
        3 => upd(Status::OnHold, None),
        4 => Body::Resolve(Resolve { revision: 0, solution: solution(&bela), journal: vec![] }),
        5 => Body::HandBack(HandBack { revision: 0, solution: Some(solution(&bela)), note: None }),
        6 => Body::Reject(Reject {
            revision: 0,
            reason: RejectionReason::NotResponsible,
            text: None,
            suggested_assignee: None,
        }),
        7 => {
            let (impact, urgency) =
                (pick(rng, &[Impact::High, Impact::Low]), pick(rng, &[Urgency::High, Urgency::Low]));
            Body::Update(Update {
                revision: 0,
                impact: Some(impact),
                urgency: Some(urgency),
                priority: Some(Priority::from_matrix(impact, urgency)),
                ..Update::default()
            })
        }
        _ => Body::Update(Update {
            revision: 0,
            journal: vec![note(&bela, &format!("Arbeitsstand {}", rng.u32(..)))],
            ..Update::default()
        }),
    }
}

async fn scenario(db: Db, seed: u64, stats: &mut Stats) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let p = Pair::new(db).await;
    let mut cases = Vec::new();
    for _ in 0..2 {
        let c = fresh_case();
        cases.push(c.case_id);
        p.mila().forward(c, None).await.unwrap();
    }
    p.settle(20).await;
    let mut accepted: Vec<(OrgKey, MessageId)> = Vec::new();
    for _ in 0..40 {
        let id = pick(&mut rng, &cases);
        match rng.u8(..20) {
            0..=4 => {
                let r = p.mila().change(id, mila_change(&mut rng)).await;
                match r {
                    Ok(sent) => accepted.push((mila_org(), sent.message_id)),
                    Err(sdx_node::engine::EngineError::Refused(_)) => stats.refused_locally += 1,
                    Err(e) => panic!("seed {seed}: MiLa's change failed: {e}"),
                }
            }
            5..=9 => {
                let r = p.bela().change(id, bela_change(&mut rng)).await;
                match r {
                    Ok(sent) => accepted.push((bela_org(), sent.message_id)),
                    Err(sdx_node::engine::EngineError::Refused(_)) => stats.refused_locally += 1,
                    Err(e) => panic!("seed {seed}: BeLa's change failed: {e}"),
                }
            }
            10..=12 => {
                p.mila().deliver_due(&p.to_bela, rng.u32(1..4)).await.unwrap();
            }
            13..=15 => {
                p.bela().deliver_due(&p.to_mila, rng.u32(1..4)).await.unwrap();
            }
            16 => {
                let l = pick(&mut rng, &[&p.to_bela, &p.to_mila]);
                let was = l.down.fetch_xor(true, Ordering::SeqCst);
                stats.partitions += usize::from(!was);
            }
            17 => {
                let l = pick(&mut rng, &[&p.to_bela, &p.to_mila]);
                l.lose_answers.fetch_xor(true, Ordering::SeqCst);
            }
            18 => {
                p.restart(&pick(&mut rng, &[mila_org(), bela_org()])).await;
                stats.restarts += 1;
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(rng.u64(1..6))).await,
        }
    }
    stats.changes += accepted.len();
    // The link heals.
    for l in [&p.to_bela, &p.to_mila] {
        l.down.store(false, Ordering::SeqCst);
        l.lose_answers.store(false, Ordering::SeqCst);
    }
    p.settle(200).await;

    let mut states: HashMap<MessageId, (Direction, MessageState)> = HashMap::new();
    let mut conflicts: HashMap<OrgKey, HashSet<MessageId>> = HashMap::new();
    for (org, e) in [(mila_org(), p.mila()), (bela_org(), p.bela())] {
        for d in e.store().list_deliveries(None, 500).await.unwrap() {
            assert!(
                matches!(d.state, DeliveryState::Delivered | DeliveryState::Rejected),
                "seed {seed}: {org} has a {} delivery: {d:?}",
                d.state
            );
        }
        for &id in &cases {
            let mut tx = e.store().begin().await.unwrap();
            for m in tx.case_messages(id).await.unwrap() {
                states.insert(m.message_id, (m.direction, m.state));
            }
            drop(tx);
            for ev in e.store().timeline(id).await.unwrap() {
                if ev.kind == EventKind::Conflict
                    && let Some(m) = ev.message_id
                {
                    conflicts.entry(org.clone()).or_default().insert(m);
                }
            }
        }
    }
    for &id in &cases {
        let (m, b) = (case_at(&p.mila(), id).await, case_at(&p.bela(), id).await);
        assert_eq!(m, b, "seed {seed}: the copies of case {id} differ");
    }
    // Every change a side made is applied on both sides, or refused by the partner and shown as a conflict to
    // its author. (Each id is stored on both sides: out at the author, in at the partner; the map keeps one.)
    for (author, id) in &accepted {
        let at_author = {
            let e = if *author == mila_org() { p.mila() } else { p.bela() };
            e.store().get_message(*id).await.unwrap().unwrap().state
        };
        let partner = if *author == mila_org() { p.bela() } else { p.mila() };
        let at_partner = partner.store().get_message(*id).await.unwrap().map(|m| m.state);
        match at_author {
            MessageState::Delivered => {
                assert_eq!(at_partner, Some(MessageState::Applied), "seed {seed}: {id} delivered but not applied")
            }
            MessageState::Rejected => {
                assert_eq!(at_partner, Some(MessageState::Refused), "seed {seed}: {id}");
                assert!(
                    conflicts.get(author).is_some_and(|c| c.contains(id)),
                    "seed {seed}: {author}'s rejected change {id} has no conflict in its timeline"
                );
                stats.conflicts += 1;
            }
            other => panic!("seed {seed}: {author}'s change {id} ended {other}"),
        }
    }
    assert!(
        !states.values().any(|(_, s)| matches!(s, MessageState::Held | MessageState::Pending | MessageState::Dead)),
        "seed {seed}: messages left held, pending or dead"
    );
    p.cleanup().await;
}

fn scenarios(default: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("SDX_CONVERGENCE_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let n = std::env::var("SDX_CONVERGENCE_SCENARIOS").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    (1..=n).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect()
}

async fn run(db: Db, default: u64) {
    let mut stats = Stats::default();
    for seed in scenarios(default) {
        scenario(db, seed, &mut stats).await;
    }
    eprintln!("{db:?}: {stats:?}");
    // The scenarios must have done what this test is about.
    assert!(stats.changes > 0 && stats.refused_locally > 0, "{stats:?}");
    if std::env::var("SDX_CONVERGENCE_SEED").is_err() {
        assert!(stats.conflicts > 0 && stats.restarts > 0 && stats.partitions > 0, "{stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_interleavings_converge_on_sqlite() {
    run(Db::Sqlite, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_interleavings_converge_on_postgres() {
    run(Db::Postgres, 20).await;
}
