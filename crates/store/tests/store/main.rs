//! The store test suite: every test below runs against SQLite (a temporary file) and PostgreSQL (a fresh schema
//! on the test server, see `pg.rs`). Test functions are generic over [`TestDb`]; `suite!` at the bottom
//! expands each into `sqlite::<name>` and `postgres::<name>`.

mod helpers;
mod lock;
mod notices;
mod pg;

use std::collections::BTreeSet;

use anyhow::Result;
use sdx_model::{Ars, CaseId, LeikaKey, MessageId, Priority, ReceiptResult, ServiceRef, Status, TicketType};
use sdx_store::{
    CaseQuery, DeliveryState, DeliveryStats, Direction, Error, EventKind, FeedCursor, IdempotentResult, MessageState,
    OurRole, Store, StoreTx, TimelineEvent,
};

use helpers::*;
use notices::{notice_latest_version_wins, notice_messages_are_not_ordered_or_blocked, notices_active_at_a_time};

// ---------------------------------------------------------------------------------------------------------------
// Cases

async fn case_insert_get_update_conflict<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let mut rec = case_rec(&bela(), t(0));
    rec.owner = Some("otobo".into());
    let id = rec.case.case_id;
    assert!(s.get_case(id).await?.is_none());

    let mut tx = s.begin().await?;
    tx.put_case(&rec, None).await?;
    assert_eq!(tx.get_case(id).await?.as_ref(), Some(&rec), "visible inside the transaction");
    assert!(s.get_case(id).await?.is_none(), "not visible outside before commit");
    tx.commit().await?;
    assert_eq!(s.get_case(id).await?, Some(rec.clone()), "round trip is exact");

    // Inserting again is a conflict; the transaction stays usable.
    let mut tx = s.begin().await?;
    assert!(matches!(tx.put_case(&rec, None).await, Err(Error::Conflict)));
    // Update from revision 1 to 2.
    let old = rec.clone();
    rec.case.revision = 2;
    rec.case.status = Status::InProgress;
    rec.our_role = OurRole::Both;
    rec.updated_at = t(5_000);
    rec.owner = Some("redmine".into());
    tx.put_case(&rec, Some(1)).await?;
    tx.commit().await?;
    assert_eq!(s.get_case(id).await?, Some(rec.clone()));

    // A stale writer (still at revision 1) conflicts and changes nothing.
    let mut tx = s.begin().await?;
    let mut stale = old.clone();
    stale.case.revision = 2;
    stale.case.subject = "stale".into();
    assert!(matches!(tx.put_case(&stale, Some(1)).await, Err(Error::Conflict)));
    tx.commit().await?;
    assert_eq!(s.get_case(id).await?, Some(rec.clone()));

    // Updating a case that does not exist.
    let mut tx = s.begin().await?;
    let ghost = case_rec(&bela(), t(0));
    assert!(matches!(tx.put_case(&ghost, Some(1)).await, Err(Error::NotFound)));
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Sequences

async fn sequences_per_case_and_peer<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let (a, b) = (case_rec(&bela(), t(0)).case.case_id, case_rec(&bela(), t(0)).case.case_id);
    let mut tx = s.begin().await?;
    assert_eq!(tx.next_out_sequence(a, &bela()).await?, 1);
    assert_eq!(tx.next_out_sequence(a, &bela()).await?, 2);
    assert_eq!(tx.next_out_sequence(a, &mila()).await?, 1, "independent per peer");
    assert_eq!(tx.next_out_sequence(b, &bela()).await?, 1, "independent per case");
    assert_eq!(tx.last_in_sequence(a, &bela()).await?, 0);
    tx.set_last_in_sequence(a, &bela(), 7).await?;
    tx.set_last_in_sequence(b, &mila(), 3).await?;
    tx.commit().await?;

    let mut tx = s.begin().await?;
    assert_eq!(tx.next_out_sequence(a, &bela()).await?, 3, "monotonic across transactions");
    assert_eq!(tx.last_in_sequence(a, &bela()).await?, 7);
    assert_eq!(tx.last_in_sequence(b, &mila()).await?, 3);
    assert_eq!(tx.last_in_sequence(b, &bela()).await?, 0);
    tx.set_last_in_sequence(a, &bela(), 8).await?;
    assert_eq!(tx.next_out_sequence(a, &bela()).await?, 4, "in and out do not disturb each other");
    drop(tx); // rolled back

    let mut tx = s.begin().await?;
    assert_eq!(tx.next_out_sequence(a, &bela()).await?, 3, "a rolled back number is handed out again");
    assert_eq!(tx.last_in_sequence(a, &bela()).await?, 7);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Messages

async fn message_round_trip_and_state<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let case = case_rec(&bela(), t(0)).case.case_id;
    let m = message(Some(case), Direction::Out, &bela(), Some(1), MessageState::Pending);
    let notice = message(None, Direction::In, &mila(), None, MessageState::Applied);
    let mut tx = s.begin().await?;
    tx.insert_message(&m).await?;
    tx.insert_message(&notice).await?;
    assert_eq!(tx.get_message(m.message_id).await?.as_ref(), Some(&m));
    tx.commit().await?;
    assert_eq!(s.get_message(m.message_id).await?, Some(m.clone()));
    assert_eq!(s.get_message(notice.message_id).await?, Some(notice.clone()));
    assert!(s.get_message(MessageId::new_random()).await?.is_none());

    let mut tx = s.begin().await?;
    tx.set_inbound_state(notice.message_id, MessageState::Refused).await?;
    assert!(matches!(tx.set_inbound_state(MessageId::new_random(), MessageState::Held).await, Err(Error::NotFound)));
    // An outbound message's state belongs to its delivery.
    assert!(matches!(tx.set_inbound_state(m.message_id, MessageState::Delivered).await, Err(Error::NotFound)));
    tx.commit().await?;
    assert_eq!(s.get_message(notice.message_id).await?.unwrap().state, MessageState::Refused);
    assert_eq!(s.get_message(m.message_id).await?.unwrap().state, MessageState::Pending);
    Ok(())
}

async fn duplicate_message_changes_nothing<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let first = case_rec(&bela(), t(0));
    let m = message(Some(first.case.case_id), Direction::In, &bela(), Some(1), MessageState::Applied);
    let mut tx = s.begin().await?;
    tx.put_case(&first, None).await?;
    tx.insert_message(&m).await?;
    tx.commit().await?;

    // A transaction that does several things, then meets a known message id and is dropped.
    let other = case_rec(&bela(), t(10));
    let mut tx = s.begin().await?;
    tx.put_case(&other, None).await?;
    assert_eq!(tx.next_out_sequence(other.case.case_id, &bela()).await?, 1);
    tx.add_event(&event(other.case.case_id, t(10), EventKind::MessageReceived, "forward")).await?;
    let mut replay = m.clone();
    replay.jws = "eyJ9.different.c2ln".into();
    replay.state = MessageState::Held;
    assert!(matches!(tx.insert_message(&replay).await, Err(Error::Duplicate)));
    // The transaction is still usable after the expected error …
    assert!(tx.get_case(other.case.case_id).await?.is_some());
    drop(tx); // … but dropped without commit: everything is rolled back.

    assert!(s.get_case(other.case.case_id).await?.is_none());
    assert!(s.timeline(other.case.case_id).await?.is_empty());
    assert_eq!(s.get_message(m.message_id).await?, Some(m.clone()), "the stored message is untouched");
    let mut tx = s.begin().await?;
    assert_eq!(tx.next_out_sequence(other.case.case_id, &bela()).await?, 1);

    // Duplicate in the same transaction, then commit: the rest is kept.
    let n = message(Some(first.case.case_id), Direction::Out, &bela(), Some(1), MessageState::Pending);
    tx.insert_message(&n).await?;
    assert!(matches!(tx.insert_message(&n).await, Err(Error::Duplicate)));
    tx.commit().await?;
    assert_eq!(s.get_message(n.message_id).await?, Some(n));
    Ok(())
}

async fn held_messages_by_sequence<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let case = case_rec(&bela(), t(0)).case.case_id;
    let other_case = case_rec(&bela(), t(0)).case.case_id;
    let mut tx = s.begin().await?;
    let mut expected = Vec::new();
    for seq in [5u64, 3, 4, 9] {
        let m = message(Some(case), Direction::In, &bela(), Some(seq), MessageState::Held);
        tx.insert_message(&m).await?;
        expected.push(m);
    }
    // Not held, other peer, other case, outbound: none of these may appear.
    tx.insert_message(&message(Some(case), Direction::In, &bela(), Some(2), MessageState::Applied)).await?;
    tx.insert_message(&message(Some(case), Direction::In, &mila(), Some(6), MessageState::Held)).await?;
    tx.insert_message(&message(Some(other_case), Direction::In, &bela(), Some(1), MessageState::Held)).await?;
    tx.insert_message(&message(Some(case), Direction::Out, &bela(), Some(7), MessageState::Pending)).await?;
    tx.commit().await?;

    expected.sort_by_key(|m| m.sequence);
    let mut tx = s.begin().await?;
    let held = tx.held_messages(case, &bela()).await?;
    assert_eq!(held, expected);
    tx.set_inbound_state(expected[0].message_id, MessageState::Applied).await?;
    let held: Vec<_> = tx.held_messages(case, &bela()).await?.into_iter().map(|m| m.sequence).collect();
    assert_eq!(held, vec![Some(4), Some(5), Some(9)]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Deliveries

async fn claim_due_leases<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let case = case_rec(&bela(), t(0)).case.case_id;
    let mut tx = s.begin().await?;
    let mut due = Vec::new();
    for i in 0..3 {
        // Three cases (one case's messages are claimed one at a time, see `claim_keeps_each_case_in_order`).
        let m = message(Some(CaseId::new_random()), Direction::Out, &bela(), Some(1), MessageState::Pending);
        tx.insert_message(&m).await?;
        tx.enqueue(&delivery(&m, t(i as i64))).await?;
        due.push(m.message_id);
    }
    let later = message(Some(case), Direction::Out, &bela(), Some(1), MessageState::Pending);
    tx.insert_message(&later).await?;
    tx.enqueue(&delivery(&later, t(10_000))).await?;
    assert!(matches!(tx.enqueue(&delivery(&later, t(0))).await, Err(Error::Duplicate)));
    assert_eq!(tx.get_delivery(later.message_id).await?, Some(delivery(&later, t(10_000))), "the first one stays");
    assert_eq!(tx.get_delivery(MessageId::new_random()).await?, None);
    tx.commit().await?;

    let claim = |now: i64, lease: i64, limit: u32| {
        let s = s.clone();
        async move {
            let mut tx = s.begin().await?;
            let got = tx.claim_due(t(now), t(lease), limit).await?;
            tx.commit().await?;
            anyhow::Ok(got.into_iter().map(|d| d.message_id).collect::<Vec<_>>())
        }
    };
    assert_eq!(claim(1_000, 31_000, 2).await?, due[..2].to_vec(), "earliest first, limited");
    assert_eq!(claim(1_000, 31_000, 10).await?, due[2..].to_vec(), "leased ones are not handed out again");
    assert!(claim(2_000, 32_000, 10).await?.is_empty());
    // A process starting releases the leases a killed one left: the deliveries are due again at once.
    let mut tx = s.begin().await?;
    assert_eq!(tx.release_leases().await?, 3);
    tx.commit().await?;
    assert_eq!(claim(2_000, 31_000, 10).await?, due.clone(), "released leases are handed out again");
    // Leases expire; the later delivery is due by now too.
    let mut all = due.clone();
    all.push(later.message_id);
    assert_eq!(claim(31_000, 61_000, 10).await?, all);

    // A failure releases the lease and sets the next attempt.
    let mut tx = s.begin().await?;
    tx.mark_failed(due[0], 1, t(40_000), "connection refused", false).await?;
    tx.commit().await?;
    assert!(claim(39_000, 99_000, 10).await?.is_empty(), "not before next_attempt_at");
    assert_eq!(claim(40_000, 99_000, 10).await?, vec![due[0]]);
    let listed = s.list_deliveries(Some(DeliveryState::Pending), 10).await?;
    let d0 = listed.iter().find(|d| d.message_id == due[0]).unwrap();
    assert_eq!((d0.attempts, d0.last_error.as_deref()), (1, Some("connection refused")));
    assert_eq!(d0.next_attempt_at, t(40_000));
    Ok(())
}

/// A case's messages to one peer are claimed one after the other, in sequence order: the next only when the one
/// before is delivered or dead; other cases and other peers are not held up.
async fn claim_keeps_each_case_in_order<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let case = CaseId::new_random();
    let ms: Vec<_> =
        (1..=3).map(|seq| message(Some(case), Direction::Out, &bela(), Some(seq), MessageState::Pending)).collect();
    let other_case = message(Some(CaseId::new_random()), Direction::Out, &bela(), Some(1), MessageState::Pending);
    let other_peer = message(Some(case), Direction::Out, &mila(), Some(1), MessageState::Pending);
    let mut tx = s.begin().await?;
    // Enqueued out of order: the order is the sequence's, not the queue's.
    for m in ms.iter().rev().chain([&other_case, &other_peer]) {
        tx.insert_message(m).await?;
        tx.enqueue(&delivery(m, t(0))).await?;
    }
    tx.commit().await?;
    let claim = |now: i64| {
        let s = s.clone();
        async move {
            let mut tx = s.begin().await?;
            let got = tx.claim_due(t(now), t(now + 1), 10).await?;
            tx.commit().await?;
            anyhow::Ok(got.into_iter().map(|d| d.message_id).collect::<BTreeSet<_>>())
        }
    };
    let first = claim(1_000).await?;
    assert_eq!(first, BTreeSet::from([ms[0].message_id, other_case.message_id, other_peer.message_id]));
    // Still undelivered (the lease ran out): the same again, not the next.
    assert_eq!(claim(2_000).await?, first);
    let mut tx = s.begin().await?;
    tx.mark_delivered(ms[0].message_id, &receipt(ms[0].message_id, Direction::In, ReceiptResult::Accepted, t(2_500)))
        .await?;
    tx.commit().await?;
    assert!(claim(3_000).await?.contains(&ms[1].message_id));
    assert!(!claim(4_000).await?.contains(&ms[2].message_id));
    // A dead letter blocks the rest of its case (the peer does not have it) …
    let mut tx = s.begin().await?;
    tx.mark_failed(ms[1].message_id, 1, t(4_500), "HTTP 403 unknownSender", true).await?;
    tx.commit().await?;
    assert!(!claim(5_000).await?.contains(&ms[2].message_id));
    // … until an operator skips it (or retries it and it is delivered).
    let mut tx = s.begin().await?;
    assert!(tx.skip_dead(ms[1].message_id).await?);
    tx.commit().await?;
    assert!(claim(6_000).await?.contains(&ms[2].message_id));
    // A rejected message (the peer judged it and refused it) does not block.
    let mut tx = s.begin().await?;
    let r = receipt(ms[2].message_id, Direction::In, ReceiptResult::Rejected, t(6_500));
    tx.mark_rejected(ms[2].message_id, &r, "refused: invalidTransition").await?;
    let m4 = message(Some(case), Direction::Out, &bela(), Some(4), MessageState::Pending);
    tx.insert_message(&m4).await?;
    tx.enqueue(&delivery(&m4, t(0))).await?;
    tx.commit().await?;
    assert!(claim(7_000).await?.contains(&m4.message_id));
    Ok(())
}

async fn delivered_failed_dead_retry<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let case = case_rec(&bela(), t(0)).case.case_id;
    let a = message(Some(case), Direction::Out, &bela(), Some(1), MessageState::Pending);
    let b = message(Some(case), Direction::Out, &bela(), Some(2), MessageState::Pending);
    let mut tx = s.begin().await?;
    for m in [&a, &b] {
        tx.insert_message(m).await?;
        tx.enqueue(&delivery(m, t(0))).await?;
    }
    tx.commit().await?;

    // a: delivered with its receipt.
    let r = receipt(a.message_id, Direction::In, ReceiptResult::Accepted, t(500));
    let mut tx = s.begin().await?;
    tx.mark_delivered(a.message_id, &r).await?;
    assert!(matches!(tx.mark_delivered(MessageId::new_random(), &r).await, Err(Error::NotFound)));
    // Idempotent: a second receipt changes neither the time nor the stored proof.
    let r2 = receipt(a.message_id, Direction::In, ReceiptResult::Accepted, t(900));
    tx.mark_delivered(a.message_id, &r2).await?;
    // A late failure report does not undo the delivery.
    tx.mark_failed(a.message_id, 3, t(9_000), "timeout", true).await?;
    tx.commit().await?;
    assert_eq!(s.get_message(a.message_id).await?.unwrap().state, MessageState::Delivered);
    let delivered = s.list_deliveries(Some(DeliveryState::Delivered), 10).await?;
    assert_eq!(delivered.len(), 1);
    assert_eq!((delivered[0].message_id, delivered[0].delivered_at), (a.message_id, Some(t(500))));
    let mut tx = s.begin().await?;
    assert_eq!(tx.get_receipt(a.message_id, Direction::In).await?, Some(r.clone()));

    // A delivery that failed before and is delivered now has no last error.
    let c = message(Some(case), Direction::Out, &bela(), Some(3), MessageState::Pending);
    tx.insert_message(&c).await?;
    tx.enqueue(&delivery(&c, t(0))).await?;
    tx.mark_failed(c.message_id, 1, t(100), "connection refused", false).await?;
    tx.mark_delivered(c.message_id, &receipt(c.message_id, Direction::In, ReceiptResult::Accepted, t(600))).await?;

    // b: fails, then dies, then is retried.
    tx.mark_failed(b.message_id, 1, t(1_000), "HTTP 503", false).await?;
    tx.mark_failed(b.message_id, 2, t(2_000), "HTTP 503 again", true).await?;
    assert!(matches!(tx.mark_failed(MessageId::new_random(), 1, t(0), "x", false).await, Err(Error::NotFound)));
    tx.commit().await?;
    assert_eq!(s.get_message(b.message_id).await?.unwrap().state, MessageState::Dead);
    let dead = s.list_deliveries(Some(DeliveryState::Dead), 10).await?;
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].attempts, dead[0].last_error.as_deref()), (2, Some("HTTP 503 again")));
    let mut tx = s.begin().await?;
    assert!(tx.claim_due(t(99_000), t(199_000), 10).await?.is_empty(), "dead letters are not claimed");
    assert!(!tx.retry_dead(a.message_id, t(3_000)).await?, "only dead deliveries can be retried");
    assert!(!tx.retry_dead(MessageId::new_random(), t(3_000)).await?);
    assert!(tx.retry_dead(b.message_id, t(3_000)).await?);
    tx.commit().await?;
    let pending = s.list_deliveries(Some(DeliveryState::Pending), 10).await?;
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].attempts, pending[0].next_attempt_at, pending[0].created_at),
        (0, t(3_000), t(3_000)),
        "a retried dead letter starts afresh: attempts and age"
    );
    assert_eq!(s.get_message(b.message_id).await?.unwrap().state, MessageState::Pending);
    let mut tx = s.begin().await?;
    let claimed = tx.claim_due(t(3_000), t(9_000), 10).await?;
    assert_eq!(claimed.iter().map(|d| d.message_id).collect::<Vec<_>>(), vec![b.message_id]);
    tx.commit().await?;

    // Listing all states: oldest first, each at most once.
    let all = s.list_deliveries(None, 10).await?;
    assert_eq!(all.len(), 3);
    let c = all.iter().find(|d| d.message_id == c.message_id).unwrap();
    assert_eq!((c.state, c.attempts, c.last_error.as_deref()), (DeliveryState::Delivered, 1, None));
    assert_eq!(s.list_deliveries(None, 1).await?.len(), 1);
    Ok(())
}

async fn concurrent_claims_never_overlap<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let case = case_rec(&bela(), t(0)).case.case_id;
    let mut tx = s.begin().await?;
    let mut ids = BTreeSet::new();
    for i in 0..120 {
        let case = if i % 2 == 0 { case } else { CaseId::new_random() };
        let m = message(Some(case), Direction::Out, &bela(), Some(i / 2 + 1), MessageState::Pending);
        tx.insert_message(&m).await?;
        tx.enqueue(&delivery(&m, t(i as i64))).await?;
        ids.insert(m.message_id);
    }
    tx.commit().await?;

    let worker = |s: D::S| async move {
        let mut got = Vec::new();
        loop {
            let mut tx = s.begin().await?;
            let batch = tx.claim_due(t(1_000_000), t(2_000_000), 7).await?;
            // Deliver what was claimed, so the next message of the shared case becomes claimable.
            for d in &batch {
                tx.mark_delivered(d.message_id, &receipt(d.message_id, Direction::In, ReceiptResult::Accepted, t(1)))
                    .await?;
            }
            tx.commit().await?;
            if batch.is_empty() {
                return anyhow::Ok(got);
            }
            got.extend(batch.into_iter().map(|d| d.message_id));
            tokio::task::yield_now().await;
        }
    };
    let (a, b) = tokio::join!(tokio::spawn(worker(s.clone())), tokio::spawn(worker(db.reopen().await)));
    let (a, b) = (a??, b??);
    let mut seen = BTreeSet::new();
    for id in a.iter().chain(&b) {
        assert!(seen.insert(*id), "delivery {id} handed out twice");
    }
    assert_eq!(seen, ids, "every delivery handed out once");
    Ok(())
}

/// Many tasks writing at once (SQLite groups their commits): every committed transaction is kept whole, every
/// dropped one vanishes whole — even when it was dropped in the middle of a group.
async fn concurrent_writers_commit_or_vanish_whole<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let shared_case = case_rec(&bela(), t(0)).case.case_id;
    let tasks = 12;
    let per_task = 15;
    let writer = |s: D::S, task: usize| async move {
        let mut kept = Vec::new();
        let mut dropped = Vec::new();
        for i in 0..per_task {
            let rec = case_rec(&bela(), t((task * 100 + i) as i64));
            let mut tx = s.begin().await?;
            tx.put_case(&rec, None).await?;
            let seq = tx.next_out_sequence(shared_case, &bela()).await?;
            tx.add_event(&event(rec.case.case_id, t(1), EventKind::MessageSent, "x")).await?;
            if (task + i).is_multiple_of(4) {
                tokio::task::yield_now().await;
                drop(tx);
                dropped.push(rec.case.case_id);
            } else {
                tx.commit().await?;
                kept.push((seq, rec.case.case_id));
            }
        }
        anyhow::Ok((kept, dropped))
    };
    let handles: Vec<_> = (0..tasks).map(|task| tokio::spawn(writer(s.clone(), task))).collect();
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for h in handles {
        let (k, d) = h.await??;
        kept.extend(k);
        dropped.extend(d);
    }
    // Sequence numbers taken by dropped transactions were rolled back and handed out again: the committed ones
    // are exactly 1..=n.
    let mut seqs: Vec<u64> = kept.iter().map(|(seq, _)| *seq).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=kept.len() as u64).collect::<Vec<_>>());
    let again = db.reopen().await;
    for (_, id) in &kept {
        assert!(again.get_case(*id).await?.is_some(), "committed case {id} missing");
        assert_eq!(again.timeline(*id).await?.len(), 1);
    }
    for id in &dropped {
        assert!(again.get_case(*id).await?.is_none(), "dropped case {id} was stored");
        assert!(again.timeline(*id).await?.is_empty());
    }
    let all = again.query_cases(&CaseQuery { limit: 500, ..Default::default() }).await?;
    assert_eq!(all.items.len(), kept.len());
    Ok(())
}

/// A transaction commits while another one waits to write, and that one is then dropped: the first commit
/// still completes (SQLite: the group's last member vanished; its rollback finishes the group).
async fn commit_completes_when_next_writer_is_dropped<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let (a, b) = (case_rec(&bela(), t(0)), case_rec(&bela(), t(0)));
    let mut tx = s.begin().await?;
    tx.put_case(&a, None).await?;
    let s2 = s.clone();
    let b2 = b.clone();
    let other = tokio::spawn(async move {
        let mut tx = s2.begin().await?;
        tx.put_case(&b2, None).await?;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        drop(tx);
        anyhow::Ok(())
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await; // the other task now waits in `begin`
    tokio::time::timeout(std::time::Duration::from_secs(10), tx.commit()).await??;
    other.await??;
    assert!(s.get_case(a.case.case_id).await?.is_some());
    assert!(s.get_case(b.case.case_id).await?.is_none());
    Ok(())
}

/// Volatile transactions (claims): committed they are kept, dropped they vanish, and mixed with durable ones
/// from many tasks at once every committed change is there after a reopen. (SQLite: a volatile transaction that
/// finds a group forming joins it; one that does not commits alone without an `fsync`.)
async fn volatile_transactions_commit_or_vanish<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let (kept, dropped) = (case_rec(&bela(), t(0)), case_rec(&bela(), t(0)));
    let mut tx = s.begin_volatile().await?;
    tx.put_case(&kept, None).await?;
    tx.commit().await?;
    assert!(s.get_case(kept.case.case_id).await?.is_some(), "visible to readers once committed");
    let mut tx = s.begin_volatile().await?;
    tx.put_case(&dropped, None).await?;
    drop(tx);
    let handles: Vec<_> = (0..8)
        .map(|task| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..15 {
                    let rec = case_rec(&bela(), t(0));
                    let mut tx = if (task + i) % 3 == 0 { s.begin_volatile().await? } else { s.begin().await? };
                    tx.put_case(&rec, None).await?;
                    tx.commit().await?;
                    ids.push(rec.case.case_id);
                }
                anyhow::Ok(ids)
            })
        })
        .collect();
    let mut ids = vec![kept.case.case_id];
    for h in handles {
        ids.extend(h.await??);
    }
    let again = db.reopen().await;
    for id in &ids {
        assert!(again.get_case(*id).await?.is_some(), "committed case {id} missing");
    }
    assert!(again.get_case(dropped.case.case_id).await?.is_none(), "a dropped volatile transaction was stored");
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Receipts and timeline

async fn receipts_both_directions<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let m = MessageId::new_random();
    let sent = receipt(m, Direction::Out, ReceiptResult::Rejected, t(100));
    let got = receipt(m, Direction::In, ReceiptResult::Accepted, t(200));
    let mut tx = s.begin().await?;
    assert!(tx.get_receipt(m, Direction::Out).await?.is_none());
    tx.put_receipt(&sent).await?;
    tx.put_receipt(&got).await?;
    // The first receipt stored is the proof; a later one is ignored.
    tx.put_receipt(&receipt(m, Direction::Out, ReceiptResult::Accepted, t(300))).await?;
    tx.commit().await?;
    let mut tx = s.begin().await?;
    assert_eq!(tx.get_receipt(m, Direction::Out).await?, Some(sent));
    assert_eq!(tx.get_receipt(m, Direction::In).await?, Some(got));
    assert!(tx.get_receipt(MessageId::new_random(), Direction::In).await?.is_none());
    Ok(())
}

async fn timeline_in_order<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let case = case_rec(&bela(), t(0)).case.case_id;
    let other = case_rec(&bela(), t(0)).case.case_id;
    let mut evs = vec![
        event(case, t(300), EventKind::StatusChanged, "new → inProgress"),
        event(case, t(100), EventKind::MessageSent, "forward #1"),
        event(case, t(200), EventKind::ReceiptReceived, "accepted"),
        event(case, t(200), EventKind::DeliveryFailed, "same time, inserted later"),
    ];
    evs[1].message_id = Some(MessageId::new_random());
    let mut tx = s.begin().await?;
    for e in &evs {
        tx.add_event(e).await?;
    }
    tx.add_event(&event(other, t(150), EventKind::Retried, "other case")).await?;
    tx.commit().await?;
    let got = s.timeline(case).await?;
    assert_eq!(got, vec![evs[1].clone(), evs[2].clone(), evs[3].clone(), evs[0].clone()]);
    assert_eq!(s.timeline(other).await?.len(), 1);
    assert!(s.timeline(case_rec(&bela(), t(0)).case.case_id).await?.is_empty());
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Change feed, connector state, idempotency keys

/// The feed until it has `n` events after `after` (PostgreSQL holds back events while any older transaction of the
/// server runs, and other tests run transactions on the same server).
async fn feed_until<S: Store>(s: &S, after: FeedCursor, n: usize) -> Result<Vec<sdx_store::FeedEvent>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let got = s.feed(after, 100).await?;
        if got.len() >= n || std::time::Instant::now() > deadline {
            return Ok(got);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn feed_in_commit_order_never_skips<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let (a, b) = (case_rec(&bela(), t(0)).case.case_id, case_rec(&bela(), t(0)).case.case_id);
    assert!(s.feed(FeedCursor::START, 100).await?.is_empty());
    // A takes the first id and stays open; B writes after it and commits first (SQLite: B waits for the writer).
    let mut first = s.begin().await?;
    first.add_event(&event(a, t(100), EventKind::MessageSent, "A")).await?;
    let s2 = s.clone();
    let second = tokio::spawn(async move {
        let mut tx = s2.begin().await?;
        tx.add_event(&event(b, t(50), EventKind::MessageReceived, "B")).await?;
        tx.commit().await?;
        anyhow::Ok(())
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(s.feed(FeedCursor::START, 100).await?.is_empty(), "nothing while an older transaction runs");
    first.commit().await?;
    second.await??;
    let got = feed_until(&s, FeedCursor::START, 2).await?;
    let details: Vec<_> = got.iter().map(|e| e.event.detail.as_str()).collect();
    assert_eq!(details, ["A", "B"], "commit-safe order: the older transaction first");
    assert!(got[0].cursor < got[1].cursor);
    assert_eq!(got[0].event.case_id, a);
    // Continuing from a cursor gives what follows it; a limit pages.
    let rest = s.feed(got[0].cursor, 100).await?;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].event.detail, "B");
    assert_eq!(s.feed(FeedCursor::START, 1).await?.len(), 1);
    assert!(s.feed(got[1].cursor, 100).await?.is_empty());
    // A cursor survives its text form; a rolled-back event never appears.
    assert_eq!(FeedCursor::parse(&got[1].cursor.to_string())?, got[1].cursor);
    let mut tx = s.begin().await?;
    tx.add_event(&event(a, t(200), EventKind::Retried, "rolled back")).await?;
    drop(tx);
    let mut tx = s.begin().await?;
    tx.add_event(&event(a, t(300), EventKind::Conflict, "C")).await?;
    tx.commit().await?;
    let got = feed_until(&s, got[1].cursor, 1).await?;
    assert_eq!(got.iter().map(|e| e.event.detail.as_str()).collect::<Vec<_>>(), ["C"]);
    for bad in ["", "1", "x.1", "1.", "-1.2", "1.2.3", "99999999999999999999.1"] {
        assert!(matches!(FeedCursor::parse(bad), Err(Error::Invalid(_))), "{bad:?}");
    }
    Ok(())
}

async fn connector_state_compare_and_set<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    assert!(s.connector_state("otobo", "link/1").await?.is_none());
    let mut tx = s.begin().await?;
    assert_eq!(tx.put_connector_state("otobo", "link/1", Some("{\"a\":1}"), Some(0)).await?, 1);
    assert!(matches!(tx.put_connector_state("otobo", "link/1", Some("x"), Some(0)).await, Err(Error::Conflict)));
    assert_eq!(tx.put_connector_state("otobo", "link/1", Some("{\"a\":2}"), Some(1)).await?, 2);
    assert!(matches!(tx.put_connector_state("otobo", "link/1", Some("x"), Some(1)).await, Err(Error::Conflict)));
    assert_eq!(tx.put_connector_state("otobo", "link/1", Some("{\"a\":3}"), None).await?, 3, "unconditional");
    assert!(matches!(tx.put_connector_state("otobo", "link/1", None, Some(2)).await, Err(Error::Conflict)));
    assert!(matches!(tx.put_connector_state("rt", "link/2", Some("x"), Some(4)).await, Err(Error::Conflict)));
    assert_eq!(tx.put_connector_state("rt", "link/1", Some("other connector"), None).await?, 1);
    assert!(s.connector_state("otobo", "link/1").await?.is_none(), "not visible before commit");
    tx.commit().await?;
    let got = s.connector_state("otobo", "link/1").await?.unwrap();
    assert_eq!((got.value.as_str(), got.version), ("{\"a\":3}", 3));
    assert_eq!(s.connector_state("rt", "link/1").await?.unwrap().value, "other connector");
    // Delete: conditional and not; deleting what is absent with Some(0) is fine.
    let mut tx = s.begin().await?;
    assert_eq!(tx.put_connector_state("otobo", "link/1", None, Some(3)).await?, 0);
    assert_eq!(tx.put_connector_state("otobo", "link/1", None, Some(0)).await?, 0);
    assert_eq!(tx.put_connector_state("rt", "link/1", None, None).await?, 0);
    tx.commit().await?;
    assert!(s.connector_state("otobo", "link/1").await?.is_none());
    assert!(s.connector_state("rt", "link/1").await?.is_none());
    // A rolled-back write leaves nothing.
    let mut tx = s.begin().await?;
    tx.put_connector_state("otobo", "cursor", Some("5"), None).await?;
    drop(tx);
    assert!(s.connector_state("otobo", "cursor").await?.is_none());
    Ok(())
}

async fn idempotency_keys<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let res = IdempotentResult { case_id: case_rec(&bela(), t(0)).case.case_id, message_id: MessageId::new_random() };
    let mut tx = s.begin().await?;
    assert!(tx.idempotent("otobo:7:1").await?.is_none());
    tx.put_idempotent("otobo:7:1", res, t(0)).await?;
    drop(tx);
    let mut tx = s.begin().await?;
    assert!(tx.idempotent("otobo:7:1").await?.is_none(), "rolled back");
    tx.put_idempotent("otobo:7:1", res, t(0)).await?;
    tx.commit().await?;
    let mut tx = s.begin().await?;
    assert_eq!(tx.idempotent("otobo:7:1").await?, Some(res));
    let other = IdempotentResult { message_id: MessageId::new_random(), ..res };
    assert!(matches!(tx.put_idempotent("otobo:7:1", other, t(1)).await, Err(Error::Duplicate)));
    assert_eq!(tx.idempotent("otobo:7:1").await?, Some(res), "the first result is kept");
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Case queries

/// Five distinguishable cases: (status, type, priority, LeiKa, region, partner, updated).
async fn query_fixture<S: Store>(s: &S) -> Result<Vec<sdx_store::CaseRecord>> {
    let leika_a = LeikaKey::parse("99107004017000")?;
    let leika_b = LeikaKey::parse("99134005017000")?;
    let rows = [
        (Status::New, TicketType::Incident, Priority::High, Some(&leika_a), Some("010020000000"), bela(), 100),
        (Status::InProgress, TicketType::Incident, Priority::Low, Some(&leika_b), Some("064120000000"), bela(), 200),
        (Status::Resolved, TicketType::ServiceRequest, Priority::High, None, Some("06412"), mila(), 300),
        (Status::New, TicketType::Complaint, Priority::Critical, Some(&leika_a), None, mila(), 400),
        (Status::Closed, TicketType::Incident, Priority::Moderate, Some(&leika_b), Some("065"), org("psw:99"), 500),
    ];
    let mut out = Vec::new();
    let mut tx = s.begin().await?;
    for (status, ty, prio, leika, region, partner, at) in rows {
        let mut rec = case_rec(&partner, t(at));
        rec.case.status = status;
        rec.case.ticket_type = ty;
        rec.case.priority = prio;
        rec.case.category.service =
            leika.map(|k| ServiceRef { leika_key: Some(k.clone()), ozg_id: None, name: Some("Dienst".into()) });
        rec.case.region = region.map(|r| Ars::parse(r).unwrap());
        rec.owner = (status == Status::New).then(|| "otobo".to_string());
        tx.put_case(&rec, None).await?;
        out.push(rec);
    }
    tx.commit().await?;
    Ok(out)
}

async fn query_filters<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let c = query_fixture(&s).await?;
    let ids = |q: CaseQuery| {
        let s = s.clone();
        let c = c.clone();
        async move {
            let page = s.query_cases(&q).await?;
            assert!(page.next_cursor.is_none());
            anyhow::Ok(
                page.items
                    .iter()
                    .map(|r| c.iter().position(|x| x.case.case_id == r.case.case_id).unwrap())
                    .collect::<Vec<_>>(),
            )
        }
    };
    let q = CaseQuery::default;
    assert_eq!(ids(q()).await?, vec![0, 1, 2, 3, 4], "no filter: all, by updated_at");
    assert_eq!(ids(CaseQuery { status: vec![Status::New], ..q() }).await?, vec![0, 3]);
    assert_eq!(
        ids(CaseQuery { status: vec![Status::Closed, Status::New, Status::Resolved, Status::New], ..q() }).await?,
        vec![0, 2, 3, 4],
        "several statuses, merged in order, no duplicates"
    );
    assert_eq!(ids(CaseQuery { ticket_type: Some(TicketType::Incident), ..q() }).await?, vec![0, 1, 4]);
    assert_eq!(ids(CaseQuery { priority: Some(Priority::High), ..q() }).await?, vec![0, 2]);
    assert_eq!(
        ids(CaseQuery { leika_key: Some(LeikaKey::parse("99134005017000")?), ..q() }).await?,
        vec![1, 4],
        "by service"
    );
    assert_eq!(ids(CaseQuery { region_prefix: Some(Ars::parse("06")?), ..q() }).await?, vec![1, 2, 4]);
    assert_eq!(ids(CaseQuery { region_prefix: Some(Ars::parse("06412")?), ..q() }).await?, vec![1, 2]);
    assert_eq!(ids(CaseQuery { region_prefix: Some(Ars::parse("064120000000")?), ..q() }).await?, vec![1]);
    assert_eq!(ids(CaseQuery { region_prefix: Some(Ars::parse("01")?), ..q() }).await?, vec![0]);
    assert_eq!(ids(CaseQuery { partner: Some(mila()), ..q() }).await?, vec![2, 3]);
    assert_eq!(ids(CaseQuery { owner: Some("otobo".into()), ..q() }).await?, vec![0, 3], "one ticket system's");
    assert_eq!(ids(CaseQuery { owner: Some("redmine".into()), ..q() }).await?, Vec::<usize>::new());
    assert_eq!(ids(CaseQuery { updated_since: Some(t(300)), ..q() }).await?, vec![2, 3, 4], "inclusive");
    assert_eq!(
        ids(CaseQuery {
            status: vec![Status::New, Status::InProgress],
            ticket_type: Some(TicketType::Incident),
            partner: Some(bela()),
            updated_since: Some(t(150)),
            ..q()
        })
        .await?,
        vec![1],
        "filters combine with AND"
    );
    assert!(ids(CaseQuery { partner: Some(org("psw:nobody")), ..q() }).await?.is_empty());

    // An update moves a case to the end of the order.
    let mut moved = c[0].clone();
    moved.case.revision = 2;
    moved.updated_at = t(600);
    let mut tx = s.begin().await?;
    tx.put_case(&moved, Some(1)).await?;
    tx.commit().await?;
    assert_eq!(ids(q()).await?, vec![1, 2, 3, 4, 0]);
    assert_eq!(ids(CaseQuery { updated_since: Some(t(550)), ..q() }).await?, vec![0]);

    assert!(matches!(
        s.query_cases(&CaseQuery { cursor: Some("not-a-cursor".into()), ..q() }).await,
        Err(Error::Invalid(_))
    ));
    Ok(())
}

async fn query_paging_no_duplicates_or_gaps<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    // 57 cases, many sharing an updated_at (ties are broken by case id), two statuses.
    let mut all = Vec::new();
    let mut tx = s.begin().await?;
    for i in 0..57 {
        let mut rec = case_rec(&bela(), t((i / 4) * 10));
        rec.case.status = if i % 3 == 0 { Status::Pending } else { Status::InProgress };
        tx.put_case(&rec, None).await?;
        all.push(rec);
    }
    tx.commit().await?;
    let key = |r: &sdx_store::CaseRecord| (r.updated_at, r.case.case_id.to_string());
    all.sort_by_key(key);

    for (statuses, size) in
        [(vec![], 10u32), (vec![], 1), (vec![Status::Pending, Status::InProgress], 7), (vec![Status::Pending], 4)]
    {
        let expected: Vec<_> = all
            .iter()
            .filter(|r| statuses.is_empty() || statuses.contains(&r.case.status))
            .map(|r| r.case.case_id)
            .collect();
        let mut got = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let page = s
                .query_cases(&CaseQuery { status: statuses.clone(), cursor, limit: size, ..Default::default() })
                .await?;
            assert!(page.items.len() <= size as usize);
            pages += 1;
            got.extend(page.items.iter().map(|r| r.case.case_id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(got, expected, "statuses {statuses:?}, page size {size}");
        assert_eq!(pages, expected.len().div_ceil(size as usize).max(1), "no empty trailing page");
    }
    // Limits: 0 means the default, anything above 500 is capped.
    assert_eq!(s.query_cases(&CaseQuery { limit: 0, ..Default::default() }).await?.items.len(), 57);
    assert_eq!(s.query_cases(&CaseQuery { limit: 100_000, ..Default::default() }).await?.items.len(), 57);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Durability

async fn committed_data_survives_reopen<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let rec = case_rec(&bela(), t(0));
    let id = rec.case.case_id;
    let m = message(Some(id), Direction::Out, &bela(), Some(1), MessageState::Pending);
    let r = receipt(m.message_id, Direction::Out, ReceiptResult::Accepted, t(7));
    let ev = event(id, t(5), EventKind::MessageSent, "forward");
    let mut tx = s.begin().await?;
    tx.put_case(&rec, None).await?;
    assert_eq!(tx.next_out_sequence(id, &bela()).await?, 1);
    tx.set_last_in_sequence(id, &bela(), 4).await?;
    tx.insert_message(&m).await?;
    tx.enqueue(&delivery(&m, t(0))).await?;
    tx.put_receipt(&r).await?;
    tx.add_event(&ev).await?;
    tx.commit().await?;
    // Uncommitted work must not survive.
    let ghost = case_rec(&bela(), t(0));
    let mut tx = s.begin().await?;
    tx.put_case(&ghost, None).await?;
    drop(tx);

    // A second store on the same database (the first still open, as after another process crashed) …
    let again = db.reopen().await;
    assert_eq!(again.get_case(id).await?, Some(rec.clone()));
    assert!(again.get_case(ghost.case.case_id).await?.is_none());
    assert_eq!(again.get_message(m.message_id).await?, Some(m.clone()));
    assert_eq!(again.timeline(id).await?, vec![ev.clone()]);
    assert_eq!(again.list_deliveries(Some(DeliveryState::Pending), 10).await?.len(), 1);
    let mut tx = again.begin().await?;
    assert_eq!(tx.get_receipt(m.message_id, Direction::Out).await?, Some(r.clone()));
    assert_eq!(tx.next_out_sequence(id, &bela()).await?, 2);
    assert_eq!(tx.last_in_sequence(id, &bela()).await?, 4);
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------

/// The in-memory SQLite database (reads go through the writer) and `open_any`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_and_open_any() -> Result<()> {
    let s = sdx_store::open_any("sqlite::memory:", None).await?;
    assert_eq!(s.engine(), "sqlite");
    let rec = case_rec(&bela(), t(0));
    let mut tx = s.begin().await?;
    tx.put_case(&rec, None).await?;
    tx.commit().await?;
    let mut tx = s.begin().await?;
    tx.put_case(&case_rec(&bela(), t(0)), None).await?;
    drop(tx);
    assert_eq!(s.get_case(rec.case.case_id).await?, Some(rec));
    assert_eq!(s.query_cases(&CaseQuery::default()).await?.items.len(), 1);
    s.close().await;
    assert!(s.begin().await.is_err(), "closed");
    assert!(matches!(sdx_store::open_any("mysql://x", None).await, Err(Error::Invalid(_))));
    assert!(matches!(sdx_store::open_any("sqlite::memory:", Some("s")).await, Err(Error::Invalid(_))));
    assert!(matches!(
        sdx_store::open_any("postgres://u@127.0.0.1:1/db", Some("Robert'); DROP")).await,
        Err(Error::Invalid(_))
    ));
    Ok(())
}

/// SQLite groups the commits of concurrent writers: fewer `fsync`s than transactions, and each transaction's
/// `commit` returns only once its group is durable (a reader sees it at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_groups_concurrent_commits() -> Result<()> {
    let db = helpers::SqliteDb::new().await;
    let s = db.store.clone();
    let before = s.commit_stats();
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    let rec = case_rec(&bela(), t(0));
                    let mut tx = s.begin().await?;
                    tx.put_case(&rec, None).await?;
                    tx.commit().await?;
                    assert!(s.get_case(rec.case.case_id).await?.is_some(), "visible to readers once committed");
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for h in handles {
        h.await??;
    }
    let stats = s.commit_stats();
    let (logical, physical) = (stats.logical - before.logical, stats.physical - before.physical);
    assert_eq!(logical, 320);
    assert!(physical < logical, "no grouping: {physical} fsyncs for {logical} transactions");
    eprintln!("{logical} transactions, {physical} durable commits");
    Ok(())
}

async fn rejected_skipped_superseded<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let case = CaseId::new_random();
    let ms: Vec<_> =
        (1..=4).map(|seq| message(Some(case), Direction::Out, &bela(), Some(seq), MessageState::Pending)).collect();
    let mut tx = s.begin().await?;
    for m in &ms {
        tx.insert_message(m).await?;
        tx.enqueue(&delivery(m, t(0))).await?;
    }
    tx.commit().await?;
    let mut tx = s.begin().await?;
    // 1: the peer's negative receipt: rejected, the receipt stored, a second receipt changes nothing.
    let r = receipt(ms[0].message_id, Direction::In, ReceiptResult::Rejected, t(100));
    tx.mark_rejected(ms[0].message_id, &r, "refused: invalidTransition").await?;
    let r2 = receipt(ms[0].message_id, Direction::In, ReceiptResult::Rejected, t(200));
    tx.mark_rejected(ms[0].message_id, &r2, "other").await?;
    assert!(matches!(tx.mark_rejected(MessageId::new_random(), &r, "x").await, Err(Error::NotFound)));
    assert_eq!(tx.get_receipt(ms[0].message_id, Direction::In).await?, Some(r.clone()));
    // A late failure report does not undo it.
    tx.mark_failed(ms[0].message_id, 1, t(300), "timeout", true).await?;
    // 2: dead, then skipped; only a dead letter can be skipped.
    assert!(!tx.skip_dead(ms[1].message_id).await?);
    tx.mark_failed(ms[1].message_id, 1, t(300), "HTTP 400 malformed", true).await?;
    assert!(tx.skip_dead(ms[1].message_id).await?);
    assert!(!tx.skip_dead(ms[1].message_id).await?);
    // 3: superseded while pending; 4 stays pending.
    assert!(tx.supersede(ms[2].message_id).await?);
    assert!(!tx.supersede(ms[1].message_id).await?);
    tx.commit().await?;
    let states: Vec<_> = {
        let mut v = Vec::new();
        for m in &ms {
            v.push(s.get_message(m.message_id).await?.unwrap().state);
        }
        v
    };
    assert_eq!(
        states,
        [MessageState::Rejected, MessageState::Skipped, MessageState::Superseded, MessageState::Pending]
    );
    let rejected = s.list_deliveries(Some(DeliveryState::Rejected), 10).await?;
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        (rejected[0].delivered_at, rejected[0].last_error.as_deref()),
        (Some(t(100)), Some("refused: invalidTransition"))
    );
    assert_eq!(s.list_deliveries(Some(DeliveryState::Skipped), 10).await?.len(), 1);
    assert_eq!(s.list_deliveries(Some(DeliveryState::Superseded), 10).await?.len(), 1);
    // Renumbering after a skip: the last outbound sequence can be set back.
    let mut tx = s.begin().await?;
    assert_eq!(tx.last_out_sequence(case, &bela()).await?, 0);
    assert_eq!(tx.next_out_sequence(case, &bela()).await?, 1);
    assert_eq!(tx.next_out_sequence(case, &bela()).await?, 2);
    assert_eq!(tx.last_out_sequence(case, &bela()).await?, 2);
    tx.set_last_out_sequence(case, &bela(), 7).await?;
    assert_eq!(tx.last_out_sequence(case, &bela()).await?, 7);
    assert_eq!(tx.next_out_sequence(case, &bela()).await?, 8);
    tx.commit().await?;
    Ok(())
}

async fn case_messages_in_order<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let case = CaseId::new_random();
    let mut tx = s.begin().await?;
    let mut want = Vec::new();
    for (dir, seq) in [(Direction::Out, 2), (Direction::In, 1), (Direction::Out, 1), (Direction::In, 3)] {
        let state = if dir == Direction::Out { MessageState::Pending } else { MessageState::Applied };
        let m = message(Some(case), dir, &bela(), Some(seq), state);
        tx.insert_message(&m).await?;
        let kind = if dir == Direction::Out { EventKind::MessageSent } else { EventKind::MessageReceived };
        tx.add_event(&TimelineEvent { message_id: Some(m.message_id), ..event(case, t(0), kind, "m") }).await?;
        want.push(m);
    }
    // Another case's message, and events that name no message or another kind, change nothing.
    let other = message(Some(CaseId::new_random()), Direction::In, &bela(), Some(1), MessageState::Applied);
    tx.insert_message(&other).await?;
    tx.add_event(&event(case, t(1), EventKind::StatusChanged, "new → inProgress")).await?;
    tx.add_event(&TimelineEvent { message_id: Some(other.message_id), ..event(case, t(2), EventKind::Conflict, "x") })
        .await?;
    let got = tx.case_messages(case).await?;
    tx.commit().await?;
    want.sort_by_key(|m| (m.direction.as_str(), m.sequence));
    assert_eq!(got, want);
    Ok(())
}

async fn stats_and_blocked_cases<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    assert_eq!(s.delivery_stats().await?, DeliveryStats::default());
    let (c1, c2) = (CaseId::new_random(), CaseId::new_random());
    let a1 = message(Some(c1), Direction::Out, &bela(), Some(1), MessageState::Pending);
    let a2 = message(Some(c1), Direction::Out, &bela(), Some(2), MessageState::Pending);
    let a3 = message(Some(c1), Direction::Out, &bela(), Some(3), MessageState::Pending);
    let b1 = message(Some(c2), Direction::Out, &mila(), Some(1), MessageState::Pending);
    let mut tx = s.begin().await?;
    for (m, at) in [(&a1, 10), (&a2, 20), (&a3, 30), (&b1, 5)] {
        tx.insert_message(m).await?;
        tx.enqueue(&delivery(m, t(at))).await?;
    }
    tx.mark_failed(a1.message_id, 4, t(50), "HTTP 413 tooLarge", true).await?;
    tx.commit().await?;
    let stats = s.delivery_stats().await?;
    assert_eq!(stats.blocked_cases, 1);
    let open: Vec<_> = stats.open.iter().map(|o| (o.peer.clone(), o.state, o.count, o.oldest)).collect();
    let mut want = vec![
        (bela(), DeliveryState::Dead, 1, t(10)),
        (bela(), DeliveryState::Pending, 2, t(20)),
        (mila(), DeliveryState::Pending, 1, t(5)),
    ];
    want.sort_by(|x, y| (x.0.as_str(), x.1.as_str()).cmp(&(y.0.as_str(), y.1.as_str())));
    assert_eq!(open, want);
    let blocked = s.list_blocked(10).await?;
    assert_eq!(blocked.len(), 1);
    let b = &blocked[0];
    assert_eq!(
        (b.case_id, &b.peer, b.message_id, b.sequence, b.attempts, b.last_error.as_deref(), b.waiting),
        (c1, &bela(), a1.message_id, Some(1), 4, Some("HTTP 413 tooLarge"), 2)
    );
    // Retried: no longer blocked.
    let mut tx = s.begin().await?;
    assert!(tx.retry_dead(a1.message_id, t(60)).await?);
    tx.commit().await?;
    assert_eq!(s.delivery_stats().await?.blocked_cases, 0);
    assert!(s.list_blocked(10).await?.is_empty());
    Ok(())
}

/// Two transactions that change the same case run one after the other: the second reads what the first wrote.
async fn case_changes_are_serialised<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let rec = case_rec(&bela(), t(0));
    let id = rec.case.case_id;
    let mut tx = s.begin().await?;
    tx.put_case(&rec, None).await?;
    tx.commit().await?;
    let mut first = s.begin().await?;
    let seen = first.get_case(id).await?.unwrap();
    let second = tokio::spawn({
        let s = s.clone();
        async move {
            let mut tx = s.begin().await?;
            let got = tx.get_case(id).await?.unwrap();
            let mut next = got.clone();
            next.case.revision += 1;
            tx.put_case(&next, Some(got.case.revision)).await?;
            tx.commit().await?;
            anyhow::Ok(got.case.subject)
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!second.is_finished(), "the second transaction waits for the first");
    let mut changed = seen.clone();
    changed.case.subject = "geändert".into();
    changed.case.revision += 1;
    first.put_case(&changed, Some(seen.case.revision)).await?;
    first.commit().await?;
    assert_eq!(second.await??, "geändert", "the second saw the first's change");
    assert_eq!(s.get_case(id).await?.unwrap().case.revision, seen.case.revision + 2);
    Ok(())
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::helpers::SqliteDb::new().await;
                    super::$name(&db).await.unwrap();
                    db.store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::pg::PgDb::new().await;
                    super::$name(&db).await.unwrap();
                    db.cleanup().await;
                }
            )*
        }
    };
}

suite!(
    case_insert_get_update_conflict,
    sequences_per_case_and_peer,
    message_round_trip_and_state,
    duplicate_message_changes_nothing,
    held_messages_by_sequence,
    claim_due_leases,
    claim_keeps_each_case_in_order,
    delivered_failed_dead_retry,
    concurrent_claims_never_overlap,
    concurrent_writers_commit_or_vanish_whole,
    commit_completes_when_next_writer_is_dropped,
    volatile_transactions_commit_or_vanish,
    receipts_both_directions,
    timeline_in_order,
    query_filters,
    query_paging_no_duplicates_or_gaps,
    committed_data_survives_reopen,
    rejected_skipped_superseded,
    case_messages_in_order,
    stats_and_blocked_cases,
    case_changes_are_serialised,
    feed_in_commit_order_never_skips,
    connector_state_compare_and_set,
    idempotency_keys,
    notice_latest_version_wins,
    notices_active_at_a_time,
    notice_messages_are_not_ordered_or_blocked,
);
