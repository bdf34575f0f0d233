//! `sdx demo`: a MiLa node and a BeLa node as real servers on loopback, with mutual TLS from a temporary
//! federation PKI and their own databases, run use case 2.1 (forward) and 2.2 (return) step by step, show both
//! timelines, and exit 0 only if both copies of the case agree. Every step goes through the nodes' local APIs
//! over HTTP with a bearer token, as the organisations' ticket systems would call them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sdx_model::sample::{self, BELA, MILA};
use sdx_model::*;
use serde_json::Value;

use crate::Outcome;
use crate::cmd::pair::{Pair, scratch_dir};

/// Options of `sdx demo`.
pub struct DemoOptions {
    /// Keep the SQLite files (and PKI) here instead of a temporary directory.
    pub data_dir: Option<PathBuf>,
    /// Run both nodes on this PostgreSQL server, each in its own schema.
    pub database_url: Option<String>,
}

/// An organisation's ticket system, as a client of its node's local API.
struct TicketSystem {
    org: OrgKey,
    http: reqwest::Client,
    base: String,
    token: String,
}

impl TicketSystem {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<serde_json::Value>) -> Result<(u16, Value)> {
        let mut rq = self.http.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await.with_context(|| format!("{method} {path} at {}", self.org))?;
        let status = r.status().as_u16();
        let value = serde_json::from_slice(&r.bytes().await?).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// `POST /cases?waitForReceipt=15`: create the case here, forward it to its assignee and wait for the
    /// assignee's signed receipt.
    async fn create(&self, case: &Case, note: &str) -> Result<()> {
        let body = serde_json::json!({ "case": case, "note": note });
        match self.call(reqwest::Method::POST, "/cases?waitForReceipt=15", Some(body)).await? {
            (201, v) if v["delivered"] == true => Ok(()),
            (201, _) => bail!("{}: no signed receipt for the forward within 15 s", self.org),
            (s, v) => bail!("{}: POST /cases answered {s}: {}", self.org, v["detail"]),
        }
    }

    /// `POST /cases/{id}/changes`: one change, sent to the partner.
    async fn change(&self, id: CaseId, body: Body) -> Result<()> {
        let path = format!("/cases/{id}/changes");
        match self.call(reqwest::Method::POST, &path, Some(serde_json::to_value(&body)?)).await? {
            (200, _) => Ok(()),
            (s, v) => bail!("{}: POST {path} answered {s}: {}", self.org, v["detail"]),
        }
    }

    /// `GET /cases/{id}`: the case and its cross-organisation timeline, if the node has it.
    async fn case(&self, id: CaseId) -> Result<Option<(Case, Vec<Value>)>> {
        match self.call(reqwest::Method::GET, &format!("/cases/{id}"), None).await? {
            (200, v) => {
                let case = serde_json::from_value(v["case"].clone()).context("the case in the answer")?;
                Ok(Some((case, v["timeline"].as_array().cloned().unwrap_or_default())))
            }
            (404, _) => Ok(None),
            (s, v) => bail!("{}: GET /cases/{id} answered {s}: {}", self.org, v["detail"]),
        }
    }

    /// Wait until the case is here and `ok` holds for it.
    async fn wait_for(&self, id: CaseId, what: &str, ok: impl Fn(&Case) -> bool) -> Result<Case> {
        let start = Instant::now();
        loop {
            if let Some((case, _)) = self.case(id).await?
                && ok(&case)
            {
                println!("   ✓ {what} ({} ms)", start.elapsed().as_millis());
                return Ok(case);
            }
            if start.elapsed() > Duration::from_secs(15) {
                bail!("timed out waiting: {what}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Wait until the node's outbox holds nothing pending (`GET /deliveries?state=pending`).
    async fn all_delivered(&self) -> Result<()> {
        let start = Instant::now();
        loop {
            let (status, v) = self.call(reqwest::Method::GET, "/deliveries?state=pending&limit=1", None).await?;
            if status == 200 && v["items"].as_array().is_some_and(Vec::is_empty) {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(15) {
                bail!("{}: deliveries still pending after 15 s", self.org);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
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
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let system = |org: &OrgKey, base: &str| TicketSystem {
        org: org.clone(),
        http: http.clone(),
        base: base.to_string(),
        token: pair.api_token.clone(),
    };
    let (mila, bela) = (system(&m_org, &pair.mila_api), system(&b_org, &pair.bela_api));
    println!("   MiLa {m_org} (115-Servicecenter Schleswig-Holstein) on https://127.0.0.1:{}", pair.mila_port);
    println!("   BeLa {b_org} (operator of EfA Wohngeld)            on https://127.0.0.1:{}", pair.bela_port);
    println!("   the ticket systems call the local APIs {} and {}", pair.mila_api, pair.bela_api);
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

async fn steps(mila: &TicketSystem, bela: &TicketSystem, m_org: &OrgKey, b_org: &OrgKey) -> Result<bool> {
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
    mila.create(&case, "Bitte um Prüfung der Upload-Grenze.").await?;
    println!("   ✓ BeLa's signed receipt is stored at MiLa (the API answered once it was)");
    bela.wait_for(id, "BeLa holds the case", |c| c.status == Status::New).await?;
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
    mila.wait_for(id, "MiLa sees inProgress and BeLa's ticket number", |c| {
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
    mila.wait_for(id, "MiLa sees the question", |c| c.status == Status::Pending).await?;
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
    bela.wait_for(id, "BeLa sees the answer", |c| c.status == Status::InProgress && c.journal.len() == 5).await?;
    println!("5. BeLa resolves and hands the case back with the solution");
    let solution = Solution {
        code: ResolutionCode::Fixed,
        text: "Die Upload-Grenze wurde von 1 MB auf 20 MB erhöht; der Antrag kann jetzt eingereicht werden.".into(),
        resolved_at: Timestamp::now(),
        resolved_by: b_org.clone(),
    };
    bela.change(id, Body::Resolve(Resolve { revision: 0, solution: solution.clone(), journal: vec![] })).await?;
    bela.change(id, Body::HandBack(HandBack { revision: 0, solution: Some(solution), note: None })).await?;
    mila.wait_for(id, "MiLa holds the solution and the case again", |c| {
        c.status == Status::Resolved && c.assignee == *m_org
    })
    .await?;
    println!("6. MiLa informs the citizen, confirms and closes");
    mila.change(id, Body::Close(Close { revision: 0, closure_code: None, note: Some("Bürgerin informiert.".into()) }))
        .await?;
    bela.wait_for(id, "BeLa sees the case closed", |c| c.status == Status::Closed).await?;
    mila.all_delivered().await?;
    bela.all_delivered().await?;
    let (m_case, _) = mila.case(id).await?.context("case at MiLa")?;
    let (b_case, _) = bela.case(id).await?.context("case at BeLa")?;

    for (name, system) in [("MiLa", mila), ("BeLa", bela)] {
        println!("\n== timeline at {name} ({}), GET /api/v1/cases/{id}", system.org);
        let (_, timeline) = system.case(id).await?.context("case")?;
        for ev in timeline {
            let text = |k: &str| ev[k].as_str().unwrap_or_default().to_string();
            println!("   {}  {:<16} {}", text("at"), text("kind"), text("detail"));
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
