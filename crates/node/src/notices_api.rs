//! Service notices on the local API (use case 2.3): an operator publishes, updates and ends this organisation's
//! disruption and maintenance notices; portals and ticket systems read the active ones — this node's and those
//! received from peers — as JSON or as an Atom feed (RFC 4287) to embed.
//!
//! | method and path | token | does |
//! |---|---|---|
//! | `POST /api/v1/notices` | yes | publish or update a notice (the notice's members; `noticeId` absent: a new notice, the node gives it an id) and send it to every recipient ([`crate::engine::Engine::notice_recipients`]) → 201 new, 200 updated |
//! | `DELETE /api/v1/notices/{id}` | yes | end one of this node's notices: it is sent again as a `resolution` (ending an ended one again sends nothing) |
//! | `GET /api/v1/notices` | yes | the active notices (own and received), JSON |
//! | `GET /notices.atom` | **no** | the same as an Atom feed, for portals to embed |
//!
//! The feed needs no token on purpose: portals embed it, and notices are public data — a notice names services,
//! regions, times, a title and a text for the public, and the rules bound them (title one line of at most 255
//! characters, text at most 65,536; no control characters). Operators must not put personal data into notices. The
//! feed is served on the local API's listener only (never to peers); expose it through the same proxy as the
//! rest of the local API, or only this path.
//!
//! A notice is **active** while it is not a resolution and has not ended (`endsAt` absent or in the future); a
//! maintenance window that starts later is listed already, with its `startsAt`, so portals can announce it.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;

use sdx_model::{Body, Coded, ErrorCode, ItemId, OrgKey, Timestamp};
use sdx_store::{MAX_PAGE, NoticeRecord, Store};

use crate::apidoc::{self, op};
use crate::engine::Published;
use crate::error::{ApiError, ApiResult, Problem};
use crate::local_api::{JsonBytes, PathId, Query, Shared};

/// Media type of the feed.
pub const ATOM_MEDIA_TYPE: &str = "application/atom+xml";
/// Path of the feed (no token).
pub const ATOM_PATH: &str = "/notices.atom";

/// The routes behind the local API's bearer tokens.
pub(crate) fn routes<S: Store>() -> OpenApiRouter<Shared<S>> {
    OpenApiRouter::new()
        .routes(op::<__path_publish, _, _, _>(publish::<S>))
        .routes(op::<__path_list, _, _, _>(list::<S>))
        .routes(op::<__path_end, _, _, _>(end::<S>))
}

/// The routes without a token: the feed.
pub(crate) fn public_routes<S: Store>() -> OpenApiRouter<Shared<S>> {
    OpenApiRouter::new().routes(op::<__path_atom, _, _, _>(atom::<S>))
}

/// The notice id in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // documentation of the path parameter read by `PathId`
struct NoticeIdParam {
    /// The notice id (UUID, lowercase).
    #[param(value_type = apidoc::UuidDoc)]
    id: String,
}

/// No query parameters; any is refused.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct NoParams {}

/// The answer to a publication.
fn published(p: Published) -> Value {
    json!({
        "noticeId": p.notice.notice_id,
        "issuedAt": p.issued_at,
        "recipients": p.recipients,
        "messageIds": p.message_ids,
        "notice": p.notice,
    })
}

/// A notice as listed: its members and who issued it when.
fn view(r: &NoticeRecord) -> Value {
    let mut v = json!(r.notice);
    v["origin"] = json!(r.origin);
    v["issuedAt"] = json!(r.issued_at);
    v["receivedAt"] = json!(r.received_at);
    v
}

/// Where the request body is put to be decoded as a message body.
const WRAP: &str = "{\"serviceNotice\":";

/// Publish or update a service notice and send it to every recipient.
///
/// The body is a notice (`/body/serviceNotice` of a message) whose `noticeId` may be left out for a new notice;
/// it is checked like `sdx validate` checks a message. Sending the same `noticeId` again publishes a new version,
/// which replaces the earlier one everywhere (a retry after a lost answer is therefore harmless). Recipients: with
/// a directory, the peers responsible for the services in the regions, and portals and service desks; without one,
/// every peer.
#[utoipa::path(
    post,
    path = "/api/v1/notices",
    operation_id = "publishNotice",
    request_body(content = apidoc::PublishNoticeDoc, content_type = "application/json"),
    responses(
        (status = 200, description = "A new version of a notice this node had published; in the outbox for every recipient", body = apidoc::PublishedDoc),
        (status = 201, description = "A new notice; in the outbox for every recipient", body = apidoc::PublishedDoc),
        (status = 400, description = "Not an SDX notice (errorCode of the first finding, e.g. malformed, schemaViolation, unknownCode, invalidIdentifier, invalidTimestamp; JSON pointer in detail)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Larger than the document limit (tooLarge)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json (malformed)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Breaks a rule beyond the schema: no service, title longer than 255 characters or not one line, text longer than 65,536 characters (tooLarge), endsAt before startsAt (invalidTimestamp), …", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn publish<S: Store>(State(st): State<Shared<S>>, JsonBytes(body): JsonBytes) -> ApiResult<Response> {
    // A new notice gets its id here; everything else is the codec's strict decoder's and the rules' business.
    let needs_id =
        matches!(serde_json::from_slice::<Value>(&body), Ok(Value::Object(m)) if !m.contains_key("noticeId"));
    let mut input = Vec::with_capacity(body.len() + WRAP.len() + 64);
    input.extend_from_slice(WRAP.as_bytes());
    match body.iter().position(|b| *b == b'{') {
        Some(i) if needs_id => {
            input.extend_from_slice(&body[..=i]);
            let rest = &body[i + 1..];
            let empty = rest.iter().all(|b| b.is_ascii_whitespace() || *b == b'}');
            let id = format!("\"noticeId\":\"{}\"{}", ItemId::new_random(), if empty { "" } else { "," });
            input.extend_from_slice(id.as_bytes());
            input.extend_from_slice(rest);
        }
        _ => input.extend_from_slice(&body),
    }
    input.push(b'}');
    let notice = match sdx_codec::validate::validate_body(&input) {
        Ok(Body::ServiceNotice(n)) => n,
        Ok(other) => {
            let detail = format!("/{}: not a service notice", other.message_type());
            return Err(ApiError::bad_request(ErrorCode::SchemaViolation, detail));
        }
        Err(e) => return Err(ApiError::invalid(unwrapped(e))),
    };
    let p = st.engine.publish_notice(notice).await?;
    let status = if p.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(published(p))).into_response())
}

/// Findings located in the request body rather than in its wrapping.
fn unwrapped(e: sdx_codec::validate::Invalid) -> sdx_codec::validate::Invalid {
    use sdx_codec::validate::Invalid;
    let fix = |ds: Vec<sdx_codec::Diagnostic>| -> Vec<sdx_codec::Diagnostic> {
        ds.into_iter()
            .map(|mut d| {
                d.pointer = d.pointer.map(|p| p.strip_prefix("/serviceNotice").map(str::to_string).unwrap_or(p));
                if d.line == Some(1) {
                    d.column = d.column.map(|c| c.saturating_sub(WRAP.len() as u32).max(1));
                }
                d
            })
            .collect()
    };
    match e {
        Invalid::Format(d) => Invalid::Format(fix(d)),
        Invalid::Rules(d) => Invalid::Rules(fix(d)),
    }
}

/// End one of this node's notices.
///
/// The notice is published again as a `resolution` (ending now, or at its start for a window that has not begun)
/// and sent to every recipient; it is no longer listed. Ending an ended notice again changes and sends nothing and
/// answers with the ended version (no recipients).
#[utoipa::path(
    delete,
    path = "/api/v1/notices/{id}",
    operation_id = "endNotice",
    params(NoticeIdParam),
    responses(
        (status = 200, description = "Ended; the resolution is in the outbox for every recipient (none if it was ended already)", body = apidoc::PublishedDoc),
        (status = 400, description = "Not a notice id (invalidIdentifier)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "This node never published a notice with this id (schemaViolation)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn end<S: Store>(State(st): State<Shared<S>>, id: PathId) -> ApiResult<Response> {
    let id = id.item_id()?;
    let p = st.engine.end_notice(id).await?;
    Ok((StatusCode::OK, axum::Json(published(p))).into_response())
}

/// The active service notices: this node's and those received from peers.
///
/// Ordered by start, then issuing organisation and notice id; at most 500. Maintenance windows that start later
/// are included.
#[utoipa::path(
    get,
    path = "/api/v1/notices",
    operation_id = "listNotices",
    params(NoParams),
    responses(
        (status = 200, description = "The active notices", body = apidoc::NoticePageDoc),
        (status = 400, description = "A query parameter (none is known: schemaViolation)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list<S: Store>(State(st): State<Shared<S>>, Query(_): Query<NoParams>) -> ApiResult<Response> {
    let items = st.engine.store().active_notices(Timestamp::now(), MAX_PAGE).await?;
    let items: Vec<Value> = items.iter().map(view).collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

/// The active service notices as an Atom feed (RFC 4287), for portals to embed. No token: notices are public.
///
/// One entry per active notice: id `urn:uuid:<noticeId>`, title, updated (when the version was issued), author
/// (the issuing organisation), a summary (kind and period), the text as content, and categories for the kind
/// (scheme `urn:xoev-de:sdx:codeliste:noticeType`), each service (`urn:sdx:leika`, `urn:sdx:ozg` or
/// `urn:sdx:service`, label = its name) and each region (`urn:sdx:ars`).
#[utoipa::path(
    get,
    path = "/notices.atom",
    operation_id = "noticesAtom",
    params(NoParams),
    responses(
        (status = 200, description = "The feed", body = String, content_type = "application/atom+xml"),
        (status = 400, description = "A query parameter (none is known: schemaViolation)", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Internal error", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Temporarily unavailable; retry", body = Problem, content_type = "application/problem+json"),
    ),
    security(())
)]
async fn atom<S: Store>(State(st): State<Shared<S>>, Query(_): Query<NoParams>) -> ApiResult<Response> {
    let now = Timestamp::now();
    let items = st.engine.store().active_notices(now, MAX_PAGE).await?;
    let xml = atom_feed(st.engine.org(), &items, now);
    let mut r = xml.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(ATOM_MEDIA_TYPE));
    Ok(r)
}

/// The Atom feed (RFC 4287) of `notices`, served by `org` at `now` (the feed's `updated` when there is no notice).
pub fn atom_feed(org: &OrgKey, notices: &[NoticeRecord], now: Timestamp) -> String {
    let updated = notices.iter().map(|n| n.issued_at).max().unwrap_or(now);
    let mut x = String::with_capacity(1024 + notices.len() * 1024);
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    element(&mut x, 1, "id", &format!("urn:sdx:notices:{org}"));
    element(&mut x, 1, "title", &format!("Service notices ({org})"));
    element(&mut x, 1, "updated", &updated.to_string());
    x.push_str("  <link rel=\"self\" href=\"");
    escape(&mut x, ATOM_PATH);
    x.push_str("\"/>\n  <author>");
    element(&mut x, 0, "name", org.as_str());
    x.push_str("</author>\n  <generator>SDX</generator>\n");
    for r in notices {
        let n = &r.notice;
        x.push_str("  <entry>\n");
        element(&mut x, 2, "id", &format!("urn:uuid:{}", n.notice_id));
        element(&mut x, 2, "title", &n.title);
        element(&mut x, 2, "updated", &r.issued_at.to_string());
        x.push_str("    <author>");
        element(&mut x, 0, "name", r.origin.as_str());
        x.push_str("</author>\n");
        category(&mut x, n.notice_type.code(), n.notice_type.entry().name_de, "urn:xoev-de:sdx:codeliste:noticeType");
        for s in &n.services {
            let label = s.name.as_deref().unwrap_or("");
            match (&s.leika_key, &s.ozg_id, &s.name) {
                (Some(k), ..) => category(&mut x, &k.to_string(), label, "urn:sdx:leika"),
                (None, Some(o), _) => category(&mut x, &o.to_string(), label, "urn:sdx:ozg"),
                (None, None, Some(name)) => category(&mut x, name, label, "urn:sdx:service"),
                (None, None, None) => {}
            }
        }
        for region in &n.regions {
            category(&mut x, &region.to_string(), "", "urn:sdx:ars");
        }
        let until = n.ends_at.map(|e| format!(" bis {e}")).unwrap_or_default();
        let summary = format!("{}: ab {}{until}", n.notice_type.entry().name_de, n.starts_at);
        element_typed(&mut x, "summary", &summary);
        element_typed(&mut x, "content", &n.text);
        x.push_str("  </entry>\n");
    }
    x.push_str("</feed>\n");
    x
}

/// `<name>text</name>` indented by `indent` levels (0: inline, no line break).
fn element(x: &mut String, indent: usize, name: &str, text: &str) {
    x.push_str(&"  ".repeat(indent));
    x.push('<');
    x.push_str(name);
    x.push('>');
    escape(x, text);
    x.push_str("</");
    x.push_str(name);
    x.push('>');
    if indent > 0 {
        x.push('\n');
    }
}

/// `<name type="text">text</name>` in an entry.
fn element_typed(x: &mut String, name: &str, text: &str) {
    x.push_str("    <");
    x.push_str(name);
    x.push_str(" type=\"text\">");
    escape(x, text);
    x.push_str("</");
    x.push_str(name);
    x.push_str(">\n");
}

/// `<category term scheme label/>` in an entry (no label if empty).
fn category(x: &mut String, term: &str, label: &str, scheme: &str) {
    x.push_str("    <category term=\"");
    escape(x, term);
    x.push_str("\" scheme=\"");
    escape(x, scheme);
    if !label.is_empty() {
        x.push_str("\" label=\"");
        escape(x, label);
    }
    x.push_str("\"/>\n");
}

/// Text as XML character data or attribute value: markup characters escaped, and characters XML 1.0 does not
/// allow (the rules refuse them in notices already) replaced by U+FFFD.
fn escape(x: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => x.push_str("&amp;"),
            '<' => x.push_str("&lt;"),
            '>' => x.push_str("&gt;"),
            '"' => x.push_str("&quot;"),
            '\'' => x.push_str("&apos;"),
            '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}' => {
                x.push(c)
            }
            _ => x.push('\u{FFFD}'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_handles_markup_and_forbidden_characters() {
        let mut x = String::new();
        escape(&mut x, "a<b>&\"c\"'d'\u{1}\u{FFFE}é\n");
        assert_eq!(x, "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;\u{FFFD}\u{FFFD}é\n");
    }
}
