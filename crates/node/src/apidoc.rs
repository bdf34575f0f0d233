//! What the HTTP surfaces and their OpenAPI document share, below both: the members of the case view and the
//! names `fields` accepts, the schemas of answers that are built as JSON (the case view, the outbox), the
//! registration of a documented handler ([`op`]) and the frame that turns the routers' documentation into the
//! finished document ([`finish`]).
//!
//! Routes are documented where they are registered: a handler carries `#[utoipa::path(…)]` and is registered
//! with [`op`], which takes the method and path for axum from that same annotation, so the document cannot
//! name a route the router does not serve, or miss one. Schemas of SDX documents (`Case`, `Body`, …) are the SDX
//! JSON Schema's definitions (`sdx_codec::schema::json_schema`), so API and format cannot drift apart.

use std::borrow::Cow;

use axum::handler::Handler;
use axum::routing::MethodRouter;
use serde_json::{Value, json};
use utoipa::openapi::path::Paths;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{OpenApi, RefOr};
use utoipa_axum::router::UtoipaMethodRouter;

/// Members of the single-case view, in response order; `fields` selects among them.
pub const VIEW_MEMBERS: &[&str] = &["case", "partner", "ourRole", "updatedAt", "owner", "timeline"];
/// Members of a query result item (the single-case view without the timeline).
pub const ITEM_MEMBERS: &[&str] = &["case", "partner", "ourRole", "updatedAt", "owner"];

/// The top-level attributes of a case (JSON names, in the order of the format description), which `fields` may
/// also name. Taken from the format description (`sdx_codec::desc::CASE`), which
/// `crates/codec/tests/lockstep.rs` keeps in lock-step with the serde model `sdx_model::Case`.
pub fn case_attributes() -> impl Iterator<Item = &'static str> {
    sdx_codec::desc::CASE.fields.iter().map(|f| f.json)
}

/// Every name `fields` accepts on a view with `members`: the members, then the case attributes that are not also
/// a member (`updatedAt` is both), each once.
pub fn field_names(members: &'static [&'static str]) -> Vec<&'static str> {
    let mut names = members.to_vec();
    names.extend(case_attributes().filter(|a| !members.contains(a)));
    names
}

/// The accepted names, for error messages.
pub fn allowed_names(members: &[&str]) -> String {
    let attributes: Vec<&str> = case_attributes().collect();
    format!("view members {}; case attributes {}", members.join(", "), attributes.join(", "))
}

/// A handler registered at the method(s) and path of its `#[utoipa::path]` annotation `P` (the generated
/// `__path_<handler>` type), with the schemas the annotation references; for
/// [`utoipa_axum::router::OpenApiRouter::routes`].
pub fn op<P, H, T, S>(handler: H) -> UtoipaMethodRouter<S>
where
    P: utoipa::Path + utoipa::__dev::SchemaReferences,
    H: Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    use utoipa_axum::PathItemExt;
    let methods = P::methods();
    let router = methods.iter().fold(MethodRouter::new(), |r, m| r.on(m.to_method_filter(), handler.clone()));
    let mut paths = Paths::new();
    paths.add_path_operation(P::path(), methods, P::operation());
    let mut schemas = Vec::new();
    P::schemas(&mut schemas);
    (schemas, paths, router)
}

/// A schema component written as JSON (answers assembled as JSON, SDX documents): its name for `$ref`s in
/// annotations; [`finish`] puts the JSON itself into the document.
macro_rules! json_component {
    ($(#[$m:meta])* $ty:ident = $name:literal) => {
        $(#[$m])*
        pub struct $ty;
        impl utoipa::PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                utoipa::openapi::ObjectBuilder::new().into()
            }
        }
        impl utoipa::ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

json_component!(
    /// `UUID` of the SDX JSON Schema.
    UuidDoc = "UUID"
);
json_component!(
    /// `Organisationskennung` of the SDX JSON Schema.
    OrgKeyDoc = "Organisationskennung"
);
json_component!(
    /// `Regionalschluessel` of the SDX JSON Schema.
    ArsDoc = "Regionalschluessel"
);
json_component!(
    /// `Leistungsschluessel` of the SDX JSON Schema.
    LeikaKeyDoc = "Leistungsschluessel"
);
json_component!(
    /// `Code.TicketType` of the SDX JSON Schema.
    TicketTypeDoc = "Code.TicketType"
);
json_component!(
    /// `Code.Priority` of the SDX JSON Schema.
    PriorityDoc = "Code.Priority"
);
json_component!(
    /// `Case` of the SDX JSON Schema.
    CaseDoc = "Case"
);
json_component!(
    /// `Body` of the SDX JSON Schema (one member named by the message type code).
    BodyDoc = "Body"
);
json_component!(
    /// The request of `POST /api/v1/cases`: the body of a forward.
    CreateCaseDoc = "CreateCase"
);
json_component!(
    /// The answer to a local change: the message id and the case.
    SentDoc = "Sent"
);
json_component!(
    /// A case view (full, or a `fields` selection).
    CaseViewAnswerDoc = "CaseViewAnswer"
);
json_component!(
    /// A page of case views.
    CasePageDoc = "CasePage"
);
json_component!(
    /// A list of deliveries.
    DeliveryPageDoc = "DeliveryPage"
);
json_component!(
    /// The answer to a retry.
    RetriedDoc = "Retried"
);
json_component!(
    /// The answer to a skip.
    SkippedDoc = "Skipped"
);
json_component!(
    /// A list of blocked cases.
    BlockedPageDoc = "BlockedPage"
);
json_component!(
    /// The request of a problem report.
    ReportDoc = "Report"
);
json_component!(
    /// The request of an escalation.
    EscalateDoc = "Escalate"
);
json_component!(
    /// The answer to an escalation.
    EscalatedDoc = "Escalated"
);
json_component!(
    /// The request of `PUT /api/v1/cases/{id}/owner`.
    OwnerDoc = "SetOwner"
);
json_component!(
    /// A page of the change feed.
    FeedPageDoc = "FeedPage"
);
json_component!(
    /// A connector's state value.
    ConnectorStateDoc = "ConnectorState"
);
json_component!(
    /// The request of a connector state write.
    PutConnectorStateDoc = "PutConnectorState"
);
json_component!(
    /// The answer to a connector state write.
    ConnectorStateVersionDoc = "ConnectorStateVersion"
);
json_component!(
    /// The request of `POST /api/v1/notices`: a service notice, `noticeId` optional.
    PublishNoticeDoc = "PublishNotice"
);
json_component!(
    /// The answer to a publication of a service notice.
    PublishedDoc = "PublishedNotice"
);
json_component!(
    /// The active service notices.
    NoticePageDoc = "NoticePage"
);
json_component!(
    /// The OpenAPI document itself.
    OpenApiDoc = "OpenApiDocument"
);

/// A schema used inline (parameters), written with utoipa's builders: `Type = function`.
macro_rules! inline_schema {
    ($(#[$m:meta])* $ty:ident = $f:expr) => {
        $(#[$m])*
        pub struct $ty;
        impl utoipa::PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                $f
            }
        }
        impl utoipa::ToSchema for $ty {}
    };
}
pub(crate) use inline_schema;

/// The schema components written as JSON.
fn json_components() -> Vec<(&'static str, Value)> {
    let view_props = json!({
        "partner": {"$ref": "#/components/schemas/Organisationskennung"},
        "ourRole": {"enum": ["originator", "assignee", "both"], "description": "This organisation's role in the case."},
        "updatedAt": {"$ref": "#/components/schemas/Zeitpunkt"},
        "owner": {"type": "string", "minLength": 1, "description": "The API client — one of this organisation's ticket systems — that owns the case (settings `[[api.clients]]`); absent when none does."},
        "timeline": {"type": "array", "items": {"$ref": "#/components/schemas/TimelineEvent"}},
    });
    let with_case = |case: Value| {
        let mut p = view_props.clone();
        p["case"] = case;
        p
    };
    // The notice of the SDX JSON Schema, as the base of what the notice endpoints take and give.
    let notice = sdx_schemas().get("ServiceNotice").cloned().unwrap_or_else(|| json!({"type": "object"}));
    let mut publish = notice.clone();
    if let Some(req) = publish.get_mut("required").and_then(Value::as_array_mut) {
        req.retain(|r| r != "noticeId");
    }
    publish["description"] = json!(
        "A service notice (as at /body/serviceNotice of a message); without noticeId a new notice, which the node gives an id. Checked like a message by the SDX decoder and rules."
    );
    let mut listed = notice.clone();
    listed["description"] = json!(
        "An active service notice with the organisation that issued it, when this version was issued and when this node stored it."
    );
    if let Some(p) = listed.get_mut("properties").and_then(Value::as_object_mut) {
        p.insert("origin".into(), json!({"$ref": "#/components/schemas/Organisationskennung"}));
        p.insert("issuedAt".into(), json!({"$ref": "#/components/schemas/Zeitpunkt"}));
        p.insert("receivedAt".into(), json!({"$ref": "#/components/schemas/Zeitpunkt"}));
    }
    if let Some(req) = listed.get_mut("required").and_then(Value::as_array_mut) {
        req.extend([json!("origin"), json!("issuedAt"), json!("receivedAt")]);
    }
    vec![
        ("PublishNotice", publish),
        ("ListedNotice", listed),
        (
            "PublishedNotice",
            json!({"type": "object", "required": ["noticeId", "issuedAt", "recipients", "messageIds", "notice"], "additionalProperties": false,
                   "properties": {"noticeId": {"$ref": "#/components/schemas/UUID"},
                                  "issuedAt": {"$ref": "#/components/schemas/Zeitpunkt"},
                                  "recipients": {"type": "array", "items": {"$ref": "#/components/schemas/Organisationskennung"},
                                                 "description": "The organisations it is sent to (for now every configured peer)."},
                                  "messageIds": {"type": "array", "items": {"$ref": "#/components/schemas/UUID"},
                                                 "description": "The message to each recipient, in the same order; see GET /api/v1/deliveries."},
                                  "notice": {"$ref": "#/components/schemas/ServiceNotice"}}}),
        ),
        (
            "NoticePage",
            json!({"type": "object", "required": ["items"], "additionalProperties": false,
                   "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/ListedNotice"}}}}),
        ),
        (
            "CreateCase",
            json!({"type": "object", "required": ["case"], "additionalProperties": false,
                   "description": "The body of a forward (as at /body/forward of a message): the case and a note for the assignee's team. Checked like a message by the SDX decoder and rules. On a node with a directory of responsibilities the case may leave out `assignee`: the node routes it by its service (category.service leikaKey or ozgId), region and support level, adds the chosen organisation as a party (role bela, or vendor at thirdLevel) and answers with `routing`.",
                   "properties": {"case": {"$ref": "#/components/schemas/Case"},
                                  "note": {"type": "string", "minLength": 1, "maxLength": sdx_model::rules::limits::MAX_TEXT_CHARS}}}),
        ),
        (
            "Sent",
            json!({"type": "object", "required": ["messageId", "case"], "additionalProperties": false,
                   "properties": {"messageId": {"$ref": "#/components/schemas/UUID"},
                                  "case": {"$ref": "#/components/schemas/Case"},
                                  "delivered": {"type": "boolean", "description": "Only with waitForReceipt: whether the assignee's signed receipt is stored."},
                                  "routing": {"type": "object", "required": ["assignee", "name", "reason", "directoryVersion"], "additionalProperties": false,
                                              "description": "Only for a case routed by the directory (sent without assignee): who was chosen and why.",
                                              "properties": {"assignee": {"$ref": "#/components/schemas/Organisationskennung"},
                                                             "name": {"type": "string"},
                                                             "reason": {"type": "string"},
                                                             "directoryVersion": {"type": "integer", "minimum": 0}}}}}),
        ),
        (
            "CaseView",
            json!({"type": "object", "required": ["case", "partner", "ourRole", "updatedAt"], "additionalProperties": false,
                   "description": "A case as this node holds it: the case, the partner organisation, our role, when this node last changed it, and (single case only) the cross-organisation timeline.",
                   "properties": with_case(json!({"$ref": "#/components/schemas/Case"}))}),
        ),
        (
            "CaseViewSelection",
            json!({"type": "object", "required": ["case"], "additionalProperties": false,
                   "description": "A fields selection of a case view: the selected members only; case holds caseId and the selected case attributes, or the whole case if case is selected.",
                   "properties": with_case(json!({"type": "object", "required": ["caseId"],
                                                  "properties": {"caseId": {"$ref": "#/components/schemas/UUID"}}}))}),
        ),
        (
            "CaseViewAnswer",
            json!({"anyOf": [{"$ref": "#/components/schemas/CaseView"}, {"$ref": "#/components/schemas/CaseViewSelection"}]}),
        ),
        (
            "CasePage",
            json!({"type": "object", "required": ["items", "nextCursor"], "additionalProperties": false,
                   "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/CaseViewAnswer"}},
                                  "nextCursor": {"type": ["string", "null"], "description": "Pass as cursor for the next page; null on the last page."}}}),
        ),
        (
            "TimelineEvent",
            json!({"type": "object", "required": ["caseId", "at", "kind", "detail"],
                   "properties": {"caseId": {"$ref": "#/components/schemas/UUID"},
                                  "at": {"$ref": "#/components/schemas/Zeitpunkt"},
                                  "kind": {"enum": sdx_store::EventKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                                           "description": "conflict: concurrent changes met — whose change lost and the state that won; blocked: the case's outgoing messages wait behind a dead letter; skipped: an operator withdrew a dead letter; reported: a connector or other local client reported a problem (POST /api/v1/cases/{id}/reports)"},
                                  "messageId": {"anyOf": [{"$ref": "#/components/schemas/UUID"}, {"type": "null"}]},
                                  "detail": {"type": "string"}}}),
        ),
        (
            "Delivery",
            json!({"type": "object", "required": ["messageId", "peer", "state", "attempts", "createdAt", "nextAttemptAt"],
                   "properties": {"messageId": {"$ref": "#/components/schemas/UUID"},
                                  "peer": {"$ref": "#/components/schemas/Organisationskennung"},
                                  "state": {"enum": sdx_store::DeliveryState::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                                            "description": "pending; delivered (the peer applied it); rejected (the peer judged and refused it: the change lost, see the case's conflict event); dead (given up: the case is blocked until retried or skipped); skipped; superseded (renumbered after a skip)"},
                                  "attempts": {"type": "integer", "minimum": 0},
                                  "createdAt": {"$ref": "#/components/schemas/Zeitpunkt"},
                                  "nextAttemptAt": {"$ref": "#/components/schemas/Zeitpunkt"},
                                  "lastError": {"type": ["string", "null"]},
                                  "deliveredAt": {"anyOf": [{"$ref": "#/components/schemas/Zeitpunkt"}, {"type": "null"}]}}}),
        ),
        (
            "DeliveryPage",
            json!({"type": "object", "required": ["items"], "additionalProperties": false,
                   "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Delivery"}}}}),
        ),
        (
            "BlockedCase",
            json!({"type": "object", "required": ["caseId", "peer", "messageId", "messageType", "attempts", "waiting"],
                   "additionalProperties": false,
                   "description": "A case whose outgoing messages to a peer wait behind a dead letter: retry or skip the dead letter to unblock it.",
                   "properties": {"caseId": {"$ref": "#/components/schemas/UUID"},
                                  "peer": {"$ref": "#/components/schemas/Organisationskennung"},
                                  "messageId": {"$ref": "#/components/schemas/UUID"},
                                  "messageType": {"type": "string"},
                                  "sequence": {"type": ["integer", "null"], "minimum": 1},
                                  "attempts": {"type": "integer", "minimum": 0},
                                  "lastError": {"type": ["string", "null"], "description": "Why it is dead"},
                                  "waiting": {"type": "integer", "minimum": 0, "description": "Later messages of the case that wait behind it"}}}),
        ),
        (
            "BlockedPage",
            json!({"type": "object", "required": ["items"], "additionalProperties": false,
                   "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/BlockedCase"}}}}),
        ),
        (
            "Skipped",
            json!({"type": "object", "required": ["messageId", "state"], "additionalProperties": false,
                   "properties": {"messageId": {"$ref": "#/components/schemas/UUID"}, "state": {"const": "skipped"}}}),
        ),
        (
            "Retried",
            json!({"type": "object", "required": ["messageId", "state"], "additionalProperties": false,
                   "properties": {"messageId": {"$ref": "#/components/schemas/UUID"}, "state": {"const": "pending"}}}),
        ),
        (
            "Report",
            json!({"type": "object", "required": ["detail"], "additionalProperties": false,
                   "properties": {"detail": {"type": "string", "minLength": 1, "maxLength": crate::connector_api::MAX_REPORT_CHARS,
                                             "pattern": "\\S", "description": "What is wrong (codes and ids, no personal data)."}}}),
        ),
        (
            "Escalate",
            json!({"type": "object", "additionalProperties": false,
                   "description": "Escalate a case this node works on to the next support level (e.g. to its vendor at thirdLevel). Without `to` the directory names the organisation responsible for the case's service and region at that level.",
                   "properties": {"to": {"$ref": "#/components/schemas/Organisationskennung"},
                                  "note": {"type": "string", "minLength": 1, "maxLength": sdx_model::rules::limits::MAX_TEXT_CHARS, "pattern": "\\S"}}}),
        ),
        (
            "SetOwner",
            json!({"type": "object", "required": ["owner"], "additionalProperties": false,
                   "description": "The API client (with cases = \"own\") that is to own the case, or null for none.",
                   "properties": {"owner": {"type": ["string", "null"], "minLength": 1, "maxLength": 64}}}),
        ),
        (
            "Escalated",
            json!({"type": "object", "required": ["child", "parent", "reason"], "additionalProperties": false,
                   "properties": {"child": {"$ref": "#/components/schemas/Sent", "description": "The child case (childOf the escalated one), forwarded to the next level."},
                                  "parent": {"$ref": "#/components/schemas/Sent", "description": "The escalated case after its update (the next level, its organisation a party, parentOf the child), sent to its partner."},
                                  "reason": {"type": "string", "description": "How the vendor was chosen."}}}),
        ),
        (
            "FeedEvent",
            json!({"allOf": [{"$ref": "#/components/schemas/TimelineEvent"},
                             {"type": "object", "required": ["cursor"],
                              "properties": {"cursor": {"type": "string", "description": "Where the feed continues after this event (opaque)."}}}]}),
        ),
        (
            "FeedPage",
            json!({"type": "object", "required": ["events", "next"], "additionalProperties": false,
                   "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/FeedEvent"}},
                                  "next": {"type": "string", "description": "Pass as after to continue; keep it durably."}}}),
        ),
        (
            "ConnectorState",
            json!({"type": "object", "required": ["value", "version"], "additionalProperties": false,
                   "properties": {"value": {"description": "The JSON value the connector wrote."},
                                  "version": {"type": "integer", "minimum": 1}}}),
        ),
        (
            "PutConnectorState",
            json!({"type": "object", "required": ["value"], "additionalProperties": false,
                   "properties": {"value": {"description": "Any JSON value, at most 64 KiB as JSON text."},
                                  "expectedVersion": {"type": ["integer", "null"], "minimum": 0, "maximum": crate::connector_api::MAX_STATE_VERSION,
                                                      "description": "Write only if the stored version is this (0: no value yet)."}}}),
        ),
        (
            "ConnectorStateVersion",
            json!({"type": "object", "required": ["version"], "additionalProperties": false,
                   "properties": {"version": {"type": "integer", "minimum": 1}}}),
        ),
        ("OpenApiDocument", json!({"type": "object", "required": ["openapi", "info", "paths"]})),
    ]
}

/// The SDX JSON Schema's definitions with their references rewritten to `#/components/schemas/` (JSON Schema
/// 2020-12 and OpenAPI 3.1 share the dialect; only the reference base differs).
fn sdx_schemas() -> serde_json::Map<String, Value> {
    let schema = sdx_codec::schema::json_schema();
    let defs = schema.get("$defs").cloned().unwrap_or_else(|| json!({}));
    serde_json::from_str::<Value>(&defs.to_string().replace("#/$defs/", "#/components/schemas/"))
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
}

/// The finished document: the routers' documentation `api` with the info, the security schemes and every
/// schema component, members sorted so that its text is stable.
pub fn finish(api: OpenApi) -> Value {
    let mut doc = serde_json::to_value(api).unwrap_or_else(|_| json!({}));
    doc["openapi"] = json!("3.1.0");
    doc["info"] = json!({
        "title": "SDX node",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Local API of an SDX node for the organisation's own ticket system and operators (bearer tokens; plain HTTP on loopback or behind a TLS proxy), and the peer endpoint between nodes (mutual TLS with certificates of the federation CA). Documents are checked like `sdx validate` does: the schemas of SDX documents are those of the SDX JSON Schema, and the rules beyond a schema (priority matrix, lifecycle, consistency) are answered with 422. Every error is application/problem+json (RFC 9457) with the stable SDX errorCode and retryable (true exactly for 5xx and 429).",
        "license": {"name": "EUPL-1.2", "identifier": "EUPL-1.2"}
    });
    doc["servers"] = json!([{"url": "/"}]);
    let components = &mut doc["components"];
    if !components.is_object() {
        *components = json!({});
    }
    if !components["schemas"].is_object() {
        components["schemas"] = json!({});
    }
    if let Some(schemas) = components["schemas"].as_object_mut() {
        schemas.extend(sdx_schemas());
        schemas.extend(json_components().into_iter().map(|(k, v)| (k.to_string(), v)));
    }
    components["securitySchemes"] = json!({
        "bearer": {"type": "http", "scheme": "bearer", "description": "Local API: one token per client; the node stores its SHA-256."},
        "mtls": {"type": "mutualTLS", "description": "Peer endpoint: a client certificate of the federation CA naming the organisation as its only urn:sdx:org:<key> subjectAltName URI."}
    });
    doc["webhooks"] = json!({
        "changeFeed": {"post": {
            "operationId": "changeFeedWebhook",
            "summary": "The change feed pushed to a [[webhooks]] URL of the settings",
            "description": "The node POSTs the events after the webhook's cursor, as GET /api/v1/events lists them, in commit order, and retries with backoff (up to a minute between attempts) until the receiver answers 2xx; then it moves the webhook's cursor (kept in the node's store). Delivery is at least once: de-duplicate by cursor. Verify the signature: HMAC-SHA256 with the webhook's shared key over the timestamp, a dot and the body.",
            "parameters": [{"name": "sdx-signature", "in": "header", "required": true,
                            "description": "t=UNIX-SECONDS,v1=HEX(HMAC-SHA256(key, t + \".\" + body))",
                            "schema": {"type": "string", "pattern": "^t=[0-9]+,v1=[0-9a-f]{64}$"}}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FeedPage"}}}},
            "responses": {"2XX": {"description": "Received: the node moves the cursor past these events"},
                          "default": {"description": "Anything else: the node sends the same events again later"}}
        }}
    });
    sorted(doc)
}

/// The value with every object's members in sorted order, whatever serde_json's map type is (with the
/// `preserve_order` feature, which some dependency may switch on, maps keep insertion order).
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_the_view_members_then_the_case_attributes() {
        let names = field_names(ITEM_MEMBERS);
        assert_eq!(&names[..6], ["case", "partner", "ourRole", "updatedAt", "owner", "caseId"]);
        assert_eq!(names.iter().filter(|n| **n == "updatedAt").count(), 1);
        assert_eq!(field_names(VIEW_MEMBERS).len(), names.len() + 1);
    }
}
