//! Service notices in the store: which version wins, which are active at a time, duplicates, and that notice
//! messages in the outbox neither wait behind nor block anything.

use anyhow::Result;
use sdx_model::{ItemId, MessageId, NoticeType, ServiceNotice, ServiceRef};
use sdx_store::{Direction, MessageState, NoticeRecord, Store, StoreTx};

use crate::helpers::*;

/// A notice of `kind` from `start` to `end` (ms after the base time of [`t`]).
pub fn notice(id: ItemId, kind: NoticeType, start: i64, end: Option<i64>, title: &str) -> ServiceNotice {
    ServiceNotice {
        notice_id: id,
        notice_type: kind,
        services: vec![ServiceRef { leika_key: None, ozg_id: None, name: Some("Wohngeld".into()) }],
        regions: vec![],
        starts_at: t(start),
        ends_at: end.map(t),
        title: title.into(),
        text: "Wartungsfenster <Hinweis> & mehr.".into(),
        related_cases: vec![],
    }
}

/// A version of `n` from `origin`, issued at `issued` ms by message `id`.
pub fn version(origin: &sdx_model::OrgKey, n: ServiceNotice, issued: i64, id: MessageId) -> NoticeRecord {
    NoticeRecord { origin: origin.clone(), notice: n, message_id: id, issued_at: t(issued), received_at: t(issued + 5) }
}

/// Two message ids, the first lower than the second.
fn two_ids() -> (MessageId, MessageId) {
    let (a, b) = (MessageId::new_random(), MessageId::new_random());
    if a.to_string() < b.to_string() { (a, b) } else { (b, a) }
}

pub async fn notice_latest_version_wins<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let id = ItemId::new_random();
    let (lo, hi) = two_ids();
    let v1 = version(&mila(), notice(id, NoticeType::Disruption, 0, None, "v1"), 1_000, hi);
    let v2 = version(&mila(), notice(id, NoticeType::Disruption, 0, Some(9_000), "v2"), 2_000, lo);
    let mut tx = s.begin().await?;
    assert!(tx.get_notice(&mila(), id).await?.is_none());
    assert!(tx.put_notice(&v1).await?, "first version stored");
    assert_eq!(tx.get_notice(&mila(), id).await?.as_ref(), Some(&v1), "visible inside the transaction");
    tx.commit().await?;

    let mut tx = s.begin().await?;
    assert!(tx.put_notice(&v2).await?, "a later createdAt wins, whatever the message id");
    assert!(!tx.put_notice(&v1).await?, "an earlier version arriving late changes nothing");
    assert!(!tx.put_notice(&v2).await?, "the same version again changes nothing");
    tx.commit().await?;
    let mut tx = s.begin().await?;
    assert_eq!(tx.get_notice(&mila(), id).await?.unwrap().notice.title, "v2");

    // Same createdAt (to the millisecond): the higher message id wins.
    let (lo, hi) = two_ids();
    let same_lo = version(&mila(), notice(id, NoticeType::Maintenance, 0, None, "same-lo"), 3_000, lo);
    let same_hi = version(&mila(), notice(id, NoticeType::Maintenance, 0, None, "same-hi"), 3_000, hi);
    assert!(tx.put_notice(&same_hi).await?);
    assert!(!tx.put_notice(&same_lo).await?, "the lower id at the same time loses");
    // The same notice id from another organisation is another notice.
    let other = version(&bela(), notice(id, NoticeType::Disruption, 0, None, "bela's"), 1, MessageId::new_random());
    assert!(tx.put_notice(&other).await?);
    tx.commit().await?;

    let mut tx = s.begin().await?;
    assert_eq!(tx.get_notice(&mila(), id).await?.unwrap().notice.title, "same-hi");
    assert_eq!(tx.get_notice(&bela(), id).await?.unwrap().notice.title, "bela's");
    // A rolled-back version leaves the stored one.
    let v9 = version(&mila(), notice(id, NoticeType::Resolution, 0, Some(1), "v9"), 9_000, MessageId::new_random());
    assert!(tx.put_notice(&v9).await?);
    drop(tx);
    let mut tx = s.begin().await?;
    let kept = tx.get_notice(&mila(), id).await?.unwrap();
    assert_eq!(kept, same_hi, "round trip is exact");
    Ok(())
}

pub async fn notices_active_at_a_time<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    let h = 3_600_000;
    let now = 10 * h;
    let open = notice(ItemId::new_random(), NoticeType::Disruption, 9 * h, None, "open disruption");
    let until_later = notice(ItemId::new_random(), NoticeType::Disruption, 8 * h, Some(11 * h), "until later");
    let future = notice(ItemId::new_random(), NoticeType::Maintenance, 20 * h, Some(22 * h), "future window");
    let ended = notice(ItemId::new_random(), NoticeType::Maintenance, 2 * h, Some(3 * h), "past window");
    let ends_now = notice(ItemId::new_random(), NoticeType::Disruption, 2 * h, Some(now), "ends now");
    let resolved = notice(ItemId::new_random(), NoticeType::Resolution, 9 * h, Some(9 * h + 5), "resolved");
    let mut tx = s.begin().await?;
    for (i, n) in [&open, &until_later, &future, &ended, &ends_now, &resolved].into_iter().enumerate() {
        let origin = if i % 2 == 0 { mila() } else { bela() };
        assert!(tx.put_notice(&version(&origin, n.clone(), 1_000, MessageId::new_random())).await?);
    }
    tx.commit().await?;

    let titles = |v: Vec<NoticeRecord>| v.into_iter().map(|r| r.notice.title).collect::<Vec<_>>();
    let active = s.active_notices(t(now), 100).await?;
    assert!(active.iter().all(|r| r.is_active(&t(now))));
    assert_eq!(titles(active), ["until later", "open disruption", "future window"], "by start; ended ones left out");
    assert_eq!(titles(s.active_notices(t(21 * h), 100).await?), ["open disruption", "future window"]);
    assert_eq!(titles(s.active_notices(t(23 * h), 100).await?), ["open disruption"]);
    assert_eq!(s.active_notices(t(now), 1).await?.len(), 1, "limit");

    // Ending a notice (a resolution with the same id, issued later) takes it off the list.
    let mut end = open.clone();
    end.notice_type = NoticeType::Resolution;
    end.ends_at = Some(t(now));
    let mut tx = s.begin().await?;
    assert!(tx.put_notice(&version(&mila(), end, 2_000, MessageId::new_random())).await?);
    tx.commit().await?;
    assert_eq!(titles(s.active_notices(t(now), 100).await?), ["until later", "future window"]);
    Ok(())
}

pub async fn notice_messages_are_not_ordered_or_blocked<D: TestDb>(db: &D) -> Result<()> {
    let s = db.store();
    // Two notice messages (no case, no sequence) to the same peer: both are claimable at once.
    let a = message(None, Direction::Out, &bela(), None, MessageState::Pending);
    let b = message(None, Direction::Out, &bela(), None, MessageState::Pending);
    let mut tx = s.begin().await?;
    for m in [&a, &b] {
        tx.insert_message(m).await?;
        tx.enqueue(&delivery(m, t(0))).await?;
    }
    tx.commit().await?;
    let mut tx = s.begin().await?;
    let claimed = tx.claim_due(t(1), t(60_000), 10).await?;
    assert_eq!(claimed.len(), 2, "notices are not ordered behind each other");
    // One dies: it blocks no case and lists as no blocked case.
    tx.mark_failed(a.message_id, 1, t(2), "refused", true).await?;
    tx.commit().await?;
    assert_eq!(s.delivery_stats().await?.blocked_cases, 0);
    assert!(s.list_blocked(10).await?.is_empty());
    Ok(())
}
