//! Service notices (use case 2.3). Two real nodes started through `App::build`, peers over mutual TLS on
//! 127.0.0.1, the local API on port 0: MiLa publishes a notice, BeLa lists it as active in JSON and in the Atom
//! feed (parsed as XML), MiLa updates it and BeLa shows the update, MiLa ends it and BeLa no longer lists it; bad
//! notices are refused with typed errors and change nothing. Then, on both engines (SQLite, PostgreSQL), messages
//! sealed by hand: a forged, a misaddressed, an oversized notice and one with a case id are refused and store
//! nothing; a duplicate is applied once; a version that arrives late does not replace a later one.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use sdx_crypto::{Alg, PrivateKey};
use sdx_model::sample::{BELA, MILA};
use sdx_model::*;
use sdx_node::app::App;
use sdx_node::engine::Answer;
use sdx_node::pki::Ca;
use sdx_node::settings::Settings;
use sdx_store::{DeliveryState, Store};

use support::{Db, Pair, bela_org, mila_org};

const TOKEN: &str = "notices-test-token";

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// One node's settings in `dir`: organisation `org` listening for peers on `listen`, its one peer `peer` at
/// `peer_addr` with signing key `peer_jwk`.
#[allow(clippy::too_many_arguments)]
fn settings(
    dir: &Path,
    ca: &Ca,
    org: &str,
    listen: SocketAddr,
    signing: &PrivateKey,
    peer: &str,
    peer_addr: SocketAddr,
    peer_jwk: &str,
) -> Settings {
    let cert = ca.issue_node(&OrgKey::parse(org).unwrap(), &[]).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(dir.join("tls.crt"), cert.cert_pem()).unwrap();
    std::fs::write(dir.join("tls.key"), cert.key_pem()).unwrap();
    std::fs::write(dir.join("signing.pem"), signing.to_pkcs8_pem()).unwrap();
    std::fs::write(dir.join("peer.jwk"), peer_jwk).unwrap();
    let token = sdx_node::protocol::sha256(TOKEN.as_bytes());
    let toml = format!(
        r#"[node]
org = "{org}"
listen = "{listen}"
[keys]
signing_key = "signing.pem"
tls_cert = "tls.crt"
tls_key = "tls.key"
federation_ca = "ca.pem"
[storage]
url = "sqlite://{}?mode=rwc"
[api]
listen = "127.0.0.1:0"
clients = [{{ name = "test", token_sha256 = "{token}" }}]
[[peers]]
org = "{peer}"
url = "https://localhost:{}"
signing_key = "peer.jwk"
"#,
        dir.join("node.db").display(),
        peer_addr.port()
    );
    let file = dir.join("node.toml");
    std::fs::write(&file, toml).unwrap();
    Settings::load(Some(&file)).unwrap()
}

struct Node {
    api: String,
    stop: tokio::sync::oneshot::Sender<()>,
    run: tokio::task::JoinHandle<Result<(), sdx_node::app::AppError>>,
}

async fn start(settings: Settings) -> Node {
    let app = App::build(settings).await.unwrap();
    let api = format!("http://{}", app.api_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    Node { api, stop, run }
}

impl Node {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        self.run.await.unwrap().unwrap();
    }
}

async fn call(method: reqwest::Method, url: &str, body: Option<&Value>) -> (u16, Value) {
    let mut r = reqwest::Client::new().request(method, url).bearer_auth(TOKEN);
    if let Some(b) = body {
        r = r.json(b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The active notices a node lists.
async fn listed(node: &Node) -> Vec<Value> {
    let (status, v) = call(reqwest::Method::GET, &format!("{}/api/v1/notices", node.api), None).await;
    assert_eq!(status, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

/// Wait until `check` holds for what `node` lists (10 s at most).
async fn until(node: &Node, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let items = listed(node).await;
        if check(&items) {
            return items;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{what}: still {items:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An Atom entry as read back by an XML parser.
#[derive(Debug, Default, Clone, PartialEq)]
struct Entry {
    id: String,
    title: String,
    updated: String,
    content: String,
    categories: Vec<(String, String)>,
}

/// Parse the feed with quick-xml (so it is well-formed XML: tags balanced, references valid) and return the feed's
/// id and its entries.
fn parse_atom(xml: &str) -> (String, Vec<Entry>) {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    r.config_mut().check_end_names = true;
    let (mut path, mut text) = (Vec::<String>::new(), String::new());
    let (mut feed_id, mut entries, mut entry) = (String::new(), Vec::new(), Entry::default());
    let mut root_ns = String::new();
    loop {
        match r.read_event().unwrap_or_else(|e| panic!("not well-formed at {}: {e}\n{xml}", r.buffer_position())) {
            Event::Start(e) => {
                let name = e.name().0.to_string();
                if path.is_empty() {
                    for a in e.attributes() {
                        let a = a.unwrap();
                        if a.key.0 == "xmlns" {
                            root_ns = a.normalized_value(quick_xml::XmlVersion::Implicit1_0).unwrap().into_owned();
                        }
                    }
                }
                path.push(name);
                text.clear();
            }
            Event::Empty(e) if e.name().0 == "category" => {
                let attr = |k: &str| {
                    e.attributes()
                        .map(Result::unwrap)
                        .find(|a| a.key.0 == k)
                        .map(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).unwrap().into_owned())
                        .unwrap_or_default()
                };
                entry.categories.push((attr("scheme"), attr("term")));
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::GeneralRef(g) => {
                let c = match &*g {
                    "lt" => '<',
                    "gt" => '>',
                    "amp" => '&',
                    "apos" => '\'',
                    "quot" => '"',
                    other => panic!("unexpected reference &{other};"),
                };
                text.push(c);
            }
            Event::End(_) => {
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                match p.as_slice() {
                    ["feed", "id"] => feed_id = text.clone(),
                    ["feed", "entry", "id"] => entry.id = text.clone(),
                    ["feed", "entry", "title"] => entry.title = text.clone(),
                    ["feed", "entry", "updated"] => entry.updated = text.clone(),
                    ["feed", "entry", "content"] => entry.content = text.clone(),
                    ["feed", "entry"] => entries.push(std::mem::take(&mut entry)),
                    _ => {}
                }
                path.pop();
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(path.is_empty(), "unclosed elements {path:?}");
    assert_eq!(root_ns, "http://www.w3.org/2005/Atom");
    (feed_id, entries)
}

async fn atom(node: &Node) -> (String, Vec<Entry>) {
    // No token: portals embed the feed.
    let r = reqwest::get(format!("{}/notices.atom", node.api)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/atom+xml");
    parse_atom(&r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_is_published_updated_and_ended_between_two_nodes() {
    let (m_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ca = Ca::generate("SDX notices test").unwrap();
    let (m_key, b_key) = (PrivateKey::generate(Alg::Es256).unwrap(), PrivateKey::generate(Alg::Es256).unwrap());
    let jwk = |k: &PrivateKey| k.public_key(Alg::Es256).unwrap().to_jwk_string();
    let (m_peer, b_peer) = (free_addr(), free_addr());
    let mila = start(settings(m_dir.path(), &ca, MILA, m_peer, &m_key, BELA, b_peer, &jwk(&b_key))).await;
    let bela = start(settings(b_dir.path(), &ca, BELA, b_peer, &b_key, MILA, m_peer, &jwk(&m_key))).await;
    let notices = format!("{}/api/v1/notices", mila.api);

    // The list needs a token; the feed does not, and is empty so far.
    let r = reqwest::get(format!("{}/api/v1/notices", bela.api)).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(atom(&bela).await.1.is_empty());

    // MiLa publishes a disruption (no noticeId: the node gives it one).
    let title = "Störung <Wohngeld> & \"Antrag\"";
    let notice = json!({
        "noticeType": "disruption",
        "services": [{"leikaKey": "99107004017000", "name": "Wohngeld"}, {"ozgId": "OZG-1104"}],
        "regions": ["01"],
        "startsAt": "2026-11-27T08:00:00+01:00",
        "title": title,
        "text": "Anträge können derzeit nicht abgeschickt werden. Wir arbeiten daran.\nBitte später erneut versuchen.",
    });
    let (status, p) = call(reqwest::Method::POST, &notices, Some(&notice)).await;
    assert_eq!(status, 201, "{p}");
    let id = p["noticeId"].as_str().unwrap().to_string();
    assert_eq!(p["recipients"], json!([BELA]));
    assert_eq!(p["messageIds"].as_array().unwrap().len(), 1);
    assert_eq!(p["notice"]["title"], title);

    // BeLa lists it as active, as JSON and in the feed.
    let items = until(&bela, "the notice at BeLa", |i| i.iter().any(|n| n["noticeId"] == id.as_str())).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["origin"], MILA);
    assert_eq!(items[0]["title"], title);
    assert_eq!(items[0]["noticeType"], "disruption");
    let (feed_id, entries) = atom(&bela).await;
    assert_eq!(feed_id, format!("urn:sdx:notices:{BELA}"));
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e.id, format!("urn:uuid:{id}"));
    assert_eq!(e.title, title, "escaped in the feed, the same text for a reader");
    assert!(e.content.starts_with("Anträge können"), "{e:?}");
    assert!(Timestamp::parse(&e.updated).is_ok(), "{e:?}");
    assert!(e.categories.contains(&("urn:sdx:leika".into(), "99107004017000".into())), "{e:?}");
    assert!(e.categories.contains(&("urn:sdx:ozg".into(), "OZG-1104".into())), "{e:?}");
    assert!(e.categories.contains(&("urn:xoev-de:sdx:codeliste:noticeType".into(), "disruption".into())));
    assert_eq!(atom(&mila).await.1.len(), 1, "the publisher lists its own notice too");

    // MiLa updates it (same id): BeLa shows the update, still one notice.
    let mut update = notice.clone();
    update["noticeId"] = json!(id);
    update["title"] = json!("Störung Wohngeld: Ursache gefunden");
    update["endsAt"] = json!("2099-01-01T00:00:00Z");
    let (status, p) = call(reqwest::Method::POST, &notices, Some(&update)).await;
    assert_eq!(status, 200, "{p}");
    let items =
        until(&bela, "the update at BeLa", |i| i.len() == 1 && i[0]["title"] == "Störung Wohngeld: Ursache gefunden")
            .await;
    assert_eq!(items[0]["endsAt"], "2099-01-01T00:00:00Z");
    assert_eq!(atom(&bela).await.1[0].title, "Störung Wohngeld: Ursache gefunden");

    // Bad notices are refused with typed errors and change nothing.
    let deliveries = |api: String| async move {
        let (_, v) = call(reqwest::Method::GET, &format!("{api}/api/v1/deliveries?limit=100"), None).await;
        v["items"].as_array().unwrap().len()
    };
    let sent = deliveries(mila.api.clone()).await;
    let mut long = update.clone();
    long["title"] = json!("x".repeat(256));
    let (status, v) = call(reqwest::Method::POST, &notices, Some(&long)).await;
    assert_eq!((status, v["errorCode"].as_str()), (422, Some("tooLarge")), "{v}");
    assert!(v["detail"].as_str().unwrap().contains("/title"), "{v}");
    let mut backwards = update.clone();
    backwards["endsAt"] = json!("2020-01-01T00:00:00Z");
    let (status, v) = call(reqwest::Method::POST, &notices, Some(&backwards)).await;
    assert_eq!((status, v["errorCode"].as_str()), (422, Some("invalidTimestamp")), "{v}");
    let mut no_service = update.clone();
    no_service["services"] = json!([]);
    let (status, v) = call(reqwest::Method::POST, &notices, Some(&no_service)).await;
    assert_eq!(status, 422, "{v}");
    let mut unknown = update.clone();
    unknown["noticeType"] = json!("outage");
    let (status, v) = call(reqwest::Method::POST, &notices, Some(&unknown)).await;
    assert_eq!((status, v["errorCode"].as_str()), (400, Some("unknownCode")), "{v}");
    let (status, v) = call(reqwest::Method::POST, &notices, Some(&json!([1]))).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(deliveries(mila.api.clone()).await, sent, "nothing queued");
    assert_eq!(listed(&mila).await[0]["title"], "Störung Wohngeld: Ursache gefunden", "nothing stored");

    // MiLa ends it: BeLa no longer lists it; ending it again sends nothing; an id never published is 404.
    let (status, p) = call(reqwest::Method::DELETE, &format!("{notices}/{id}"), None).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["notice"]["noticeType"], "resolution");
    until(&bela, "the end at BeLa", |i| i.is_empty()).await;
    assert!(atom(&bela).await.1.is_empty());
    assert!(listed(&mila).await.is_empty());
    let (status, v) = call(reqwest::Method::DELETE, &format!("{notices}/{id}"), None).await;
    assert_eq!((status, &v["notice"]["noticeType"], &v["recipients"]), (200, &json!("resolution"), &json!([])), "{v}");
    let (status, v) = call(reqwest::Method::DELETE, &format!("{notices}/{}", ItemId::new_random()), None).await;
    assert_eq!(status, 404, "{v}");
    let (status, v) = call(reqwest::Method::DELETE, &format!("{notices}/not-a-uuid"), None).await;
    assert_eq!((status, v["errorCode"].as_str()), (400, Some("invalidIdentifier")), "{v}");

    // Every notice message was delivered with a receipt.
    let (_, v) = call(reqwest::Method::GET, &format!("{}/api/v1/deliveries?state=delivered", mila.api), None).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 3, "{v}");
    mila.shutdown().await;
    bela.shutdown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// Refusals and duplicates, on both engines.

fn sample_notice(title: &str) -> ServiceNotice {
    ServiceNotice {
        notice_id: ItemId::new_random(),
        notice_type: NoticeType::Maintenance,
        services: vec![ServiceRef { leika_key: None, ozg_id: None, name: Some("Wohngeld".into()) }],
        regions: vec![],
        starts_at: Timestamp::parse("2099-01-01T08:00:00Z").unwrap(),
        ends_at: Some(Timestamp::parse("2099-01-01T12:00:00Z").unwrap()),
        title: title.into(),
        text: "Wartungsfenster.".into(),
        related_cases: vec![],
    }
}

/// A notice message from MiLa to `reader`, made at `created`.
fn notice_message(pair: &Pair, reader: &OrgKey, n: &ServiceNotice, created: Timestamp) -> Message {
    let mut header = pair.mila_identity().header(MessageType::ServiceNotice, reader, None, None, None, None);
    header.created_at = created;
    Message { header, body: Body::ServiceNotice(n.clone()) }
}

/// What BeLa answered: accepted, or the codes of the refusal.
fn outcome(a: &Answer) -> Result<(), Vec<String>> {
    match a {
        Answer::Receipt { jws, result: ReceiptResult::Accepted } => {
            assert!(!jws.is_empty());
            Ok(())
        }
        Answer::Receipt { jws, .. } => {
            let (_, payload) = sdx_crypto::jws::decode_unverified(jws).unwrap();
            let m: Message = serde_json::from_slice(&payload).unwrap();
            let Body::Receipt(r) = m.body else { panic!("not a receipt") };
            assert!(r.digest.is_none(), "a refused notice is not kept: no digest");
            Err(r.errors.iter().map(|e| e.code.to_string()).collect())
        }
        Answer::Problem { code, .. } => Err(vec![code.to_string()]),
    }
}

async fn refused_and_duplicate_notices(db: Db) {
    let pair = Pair::new(db).await;
    let (bela, me) = (pair.bela(), pair.mila_identity());
    let now = Timestamp::now();
    let active = || async { bela.store().active_notices(Timestamp::now(), 100).await.unwrap() };

    // Forged: signed with a key that is not MiLa's.
    let n = sample_notice("Wartung");
    let forger = sdx_node::protocol::Identity {
        org: mila_org(),
        name: None,
        signing_key: PrivateKey::generate(Alg::Es256).unwrap(),
    };
    let forged = forger.seal(&notice_message(&pair, &bela_org(), &n, now)).unwrap();
    let a = bela.receive(forged.jws.as_bytes(), &mila_org()).await.unwrap();
    assert_eq!(outcome(&a), Err(vec!["signatureInvalid".to_string()]));
    // Misaddressed: to another organisation.
    let other = OrgKey::parse("psw:99999999").unwrap();
    let misaddressed = me.seal(&notice_message(&pair, &other, &n, now)).unwrap();
    let a = bela.receive(misaddressed.jws.as_bytes(), &mila_org()).await.unwrap();
    assert_eq!(outcome(&a), Err(vec!["wrongRecipient".to_string()]));
    // Oversized: a title beyond the limit.
    let big = sample_notice(&"x".repeat(300));
    let oversized = me.seal(&notice_message(&pair, &bela_org(), &big, now)).unwrap();
    let a = bela.receive(oversized.jws.as_bytes(), &mila_org()).await.unwrap();
    assert!(outcome(&a).unwrap_err().contains(&"tooLarge".to_string()), "{a:?}");
    // With a case id: a notice is about no case.
    let mut with_case = notice_message(&pair, &bela_org(), &n, now);
    with_case.header.case_id = Some(CaseId::new_random());
    let a = bela.receive(me.seal(&with_case).unwrap().jws.as_bytes(), &mila_org()).await.unwrap();
    assert_eq!(outcome(&a), Err(vec!["schemaViolation".to_string()]));
    // From an organisation that is not a peer.
    let good = me.seal(&notice_message(&pair, &bela_org(), &n, now)).unwrap();
    let a = bela.receive(good.jws.as_bytes(), &other).await.unwrap();
    assert_eq!(outcome(&a), Err(vec!["unknownSender".to_string()]));
    assert!(active().await.is_empty(), "nothing of the refused notices is stored");
    for m in [&forged, &misaddressed, &oversized] {
        let id = sdx_crypto::jws::decode_unverified(&m.jws).unwrap().1;
        let id: Message = serde_json::from_slice(&id).unwrap();
        assert!(bela.store().get_message(id.header.message_id).await.unwrap().is_none());
    }

    // The good one, twice: applied once, answered with the same receipt.
    let first = bela.receive(good.jws.as_bytes(), &mila_org()).await.unwrap();
    let second = bela.receive(format!("  {}\n", good.jws).as_bytes(), &mila_org()).await.unwrap();
    assert_eq!(outcome(&first), Ok(()));
    assert_eq!(first, second, "the duplicate gets the stored receipt");
    let listed = active().await;
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].origin.clone(), listed[0].notice.clone()), (mila_org(), n.clone()));

    // A later version, then an earlier one arriving late: the later one stays.
    let mut newer = n.clone();
    newer.title = "Wartung verschoben".into();
    let later = Timestamp::from_offset_date_time(now.as_offset_date_time() + time::Duration::seconds(5));
    let newer_msg = me.seal(&notice_message(&pair, &bela_org(), &newer, later)).unwrap();
    assert_eq!(outcome(&bela.receive(newer_msg.jws.as_bytes(), &mila_org()).await.unwrap()), Ok(()));
    let mut stale = n.clone();
    stale.title = "Wartung (alt)".into();
    let earlier = Timestamp::from_offset_date_time(now.as_offset_date_time() + time::Duration::seconds(2));
    let stale_msg = me.seal(&notice_message(&pair, &bela_org(), &stale, earlier)).unwrap();
    assert_eq!(outcome(&bela.receive(stale_msg.jws.as_bytes(), &mila_org()).await.unwrap()), Ok(()), "kept, answered");
    let listed = active().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].notice.title, "Wartung verschoben");

    // Published through the engine: queued for BeLa, delivered with a receipt, listed at BeLa; ended likewise.
    let mila = pair.mila();
    let p = mila.publish_notice(sample_notice("Wartung am Wochenende")).await.unwrap();
    assert_eq!(p.recipients, vec![bela_org()]);
    pair.settle(50).await;
    assert!(mila.store().list_deliveries(Some(DeliveryState::Pending), 10).await.unwrap().is_empty());
    assert_eq!(active().await.len(), 2);
    let ended = mila.end_notice(p.notice.notice_id).await.unwrap();
    let again = mila.end_notice(p.notice.notice_id).await.unwrap();
    assert_eq!((again.notice, again.message_ids.len()), (ended.notice, 0), "ending twice sends once");
    assert!(matches!(
        mila.end_notice(ItemId::new_random()).await,
        Err(sdx_node::engine::EngineError::UnknownNotice(_))
    ));
    pair.settle(50).await;
    assert_eq!(active().await.len(), 1);
    assert!(mila.store().active_notices(Timestamp::now(), 10).await.unwrap().is_empty());
    pair.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_duplicate_notices_sqlite() {
    refused_and_duplicate_notices(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_duplicate_notices_postgres() {
    refused_and_duplicate_notices(Db::Postgres).await;
}
