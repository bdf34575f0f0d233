//! `sdx demo`: a MiLa node and a BeLa node as real servers on loopback, with mutual TLS from a temporary
//! federation PKI and their own databases, run use case 2.1 (forward) and 2.2 (return) step by step, show both
//! timelines, and exit 0 only if both copies of the case agree.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sdx_model::sample::{self, BELA, MILA};
use sdx_model::*;
use sdx_node::engine::Engine;
use sdx_store::{AnyStore, DeliveryState, Store};

use crate::Outcome;
use crate::cmd::pair::{Pair, scratch_dir};

/// Options of `sdx demo`.
pub struct DemoOptions {
    /// Keep the SQLite files (and PKI) here instead of a temporary directory.
    pub data_dir: Option<PathBuf>,
    /// Run both nodes on this PostgreSQL server, each in its own schema.
    pub database_url: Option<String>,
}

async fn wait_for(e: &Engine<AnyStore>, id: CaseId, what: &str, ok: impl Fn(&Case) -> bool) -> Result<Case> {
    let start = Instant::now();
    loop {
        if let Some(rec) = e.store().get_case(id).await?
            && ok(&rec.case)
        {
            println!("   ✓ {what} ({} ms)", start.elapsed().as_millis());
            return Ok(rec.case);
        }
        if start.elapsed() > Duration::from_secs(15) {
            bail!("timed out waiting: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn all_delivered(e: &Engine<AnyStore>) -> Result<()> {
    let start = Instant::now();
    while !e.store().list_deliveries(Some(DeliveryState::Pending), 1).await?.is_empty() {
        if start.elapsed() > Duration::from_secs(15) {
            bail!("{}: deliveries still pending after 15 s", e.org());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

fn journal(org: &OrgKey, visibility: Visibility, text: &str) -> JournalEntry {
    JournalEntry {
        id: ItemId::new_random(),
        visibility,
        author: Author { organisation: org.clone(), name: None },
        created_at: Timestamp::now(),
        text: text.into(),
    }
}

/// `sdx demo [--data-dir DIR] [--database-url postgres://…]`
pub fn demo(opts: DemoOptions) -> Result<Outcome> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(run(opts))
}

async fn run(opts: DemoOptions) -> Result<Outcome> {
    let dir = match &opts.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.clone()
        }
        None => scratch_dir("sdx-demo")?,
    };
    let (m_org, b_org) = (OrgKey::parse(MILA)?, OrgKey::parse(BELA)?);
    println!("== setting up: federation CA, two node certificates, ES256 signing keys in {}", dir.display());
    let pair = Pair::start(&dir, opts.database_url.as_deref(), "sdx_demo").await?;
    let (mila, bela) = (pair.mila.clone(), pair.bela.clone());
    println!("   MiLa {m_org} (115-Servicecenter Schleswig-Holstein) on https://127.0.0.1:{}", pair.mila_port);
    println!("   BeLa {b_org} (operator of EfA Wohngeld)            on https://127.0.0.1:{}", pair.bela_port);
    println!(
        "   storage: {}",
        if opts.database_url.is_some() { "PostgreSQL, one schema per node" } else { "SQLite, one file per node" }
    );
    let result = steps(&mila, &bela, &m_org, &b_org).await;
    pair.stop().await;
    let agreed = result?;
    if opts.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(if agreed { Outcome::Valid } else { Outcome::Invalid })
}

async fn steps(mila: &Engine<AnyStore>, bela: &Engine<AnyStore>, m_org: &OrgKey, b_org: &OrgKey) -> Result<bool> {
    let mut case = sample::typical_case();
    case.case_id = CaseId::new_random();
    let id = case.case_id;
    let upd = |f: &dyn Fn(&mut Update)| {
        let mut u = Update::default();
        f(&mut u);
        Body::Update(u)
    };

    println!("\n== use case 2.1: forward (MiLa → BeLa)");
    println!("1. MiLa escalates case {id}: \"{}\"", case.subject);
    mila.forward(case, Some("Bitte um Prüfung der Upload-Grenze.".into())).await?;
    wait_for(bela, id, "BeLa holds the case; its signed receipt is stored at MiLa", |c| c.status == Status::New)
        .await?;
    all_delivered(mila).await?;
    println!("2. BeLa acknowledges, records its own ticket number and starts work");
    let reference =
        ExternalReference { owner: b_org.clone(), system: Some("Redmine".into()), id: "HZD-WG-2026-1187".into() };
    bela.change(id, upd(&|u| u.status = Some(Status::Acknowledged))).await?;
    bela.change(
        id,
        upd(&|u| {
            u.status = Some(Status::InProgress);
            u.references = vec![reference.clone()];
        }),
    )
    .await?;
    wait_for(mila, id, "MiLa sees inProgress and BeLa's ticket number", |c| {
        c.status == Status::InProgress && c.references.iter().any(|r| r.owner == *b_org)
    })
    .await?;

    println!("\n== use case 2.2: return (BeLa → MiLa)");
    println!("3. BeLa asks for information (pending, waiting for the requester)");
    let q = journal(b_org, Visibility::Public, "Bitte teilen Sie mit, welches Dateiformat der Nachweis hat.");
    bela.change(
        id,
        upd(&|u| {
            u.status = Some(Status::Pending);
            u.pending_reason = Some(PendingReason::WaitingForRequester);
            u.journal = vec![q.clone()];
        }),
    )
    .await?;
    wait_for(mila, id, "MiLa sees the question", |c| c.status == Status::Pending).await?;
    println!("4. MiLa answers; the case goes back to work");
    let a = journal(m_org, Visibility::Public, "PDF, 1,2 MB; die Bürgerin hat es mit zwei Browsern versucht.");
    mila.change(
        id,
        upd(&|u| {
            u.status = Some(Status::InProgress);
            u.journal = vec![a.clone()];
        }),
    )
    .await?;
    wait_for(bela, id, "BeLa sees the answer", |c| c.status == Status::InProgress && c.journal.len() == 5).await?;
    println!("5. BeLa resolves and hands the case back with the solution");
    let solution = Solution {
        code: ResolutionCode::Fixed,
        text: "Die Upload-Grenze wurde von 1 MB auf 20 MB erhöht; der Antrag kann jetzt eingereicht werden.".into(),
        resolved_at: Timestamp::now(),
        resolved_by: b_org.clone(),
    };
    bela.change(id, Body::Resolve(Resolve { revision: 0, solution: solution.clone(), journal: vec![] })).await?;
    bela.change(id, Body::HandBack(HandBack { revision: 0, solution: Some(solution), note: None })).await?;
    wait_for(mila, id, "MiLa holds the solution and the case again", |c| {
        c.status == Status::Resolved && c.assignee == *m_org
    })
    .await?;
    println!("6. MiLa informs the citizen, confirms and closes");
    mila.change(id, Body::Close(Close { revision: 0, closure_code: None, note: Some("Bürgerin informiert.".into()) }))
        .await?;
    let b_case = wait_for(bela, id, "BeLa sees the case closed", |c| c.status == Status::Closed).await?;
    all_delivered(mila).await?;
    all_delivered(bela).await?;
    let m_case = mila.store().get_case(id).await?.context("case at MiLa")?.case;

    for (name, e) in [("MiLa", mila), ("BeLa", bela)] {
        println!("\n== timeline at {name} ({})", e.org());
        for ev in e.store().timeline(id).await? {
            println!("   {}  {:<16} {}", ev.at, ev.kind.as_str(), ev.detail);
        }
    }
    println!("\n== status history (both sides)");
    for s in &m_case.status_history {
        println!("   {}  {:<13} by {}", s.changed_at, s.status.to_string(), s.changed_by);
    }
    let agreed = m_case == b_case;
    if agreed {
        println!(
            "\n== both sides agree: revision {}, status {}, {} journal entries",
            m_case.revision,
            m_case.status,
            m_case.journal.len()
        );
    } else {
        eprintln!("\n== the two copies of the case differ");
    }
    Ok(agreed)
}
