//! The OpenAPI 3.1 document of the local API and the peer endpoint. Its schemas are the SDX JSON Schema's
//! definitions (`sdx_codec::schema`), so the API and the document format cannot drift apart; a snapshot test
//! compares it with `docs/openapi.json`. `sdx openapi` prints it; the node serves it at
//! `GET /api/v1/openapi.json`.

use serde_json::{Value, json};

use crate::local_api::{ITEM_MEMBERS, VIEW_MEMBERS, field_names};

fn problem_responses(codes: &[u16]) -> Value {
    let mut m = serde_json::Map::new();
    for c in codes {
        m.insert(
            c.to_string(),
            json!({"description": "Problem (RFC 9457) with the SDX error code in errorCode",
                   "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}),
        );
    }
    Value::Object(m)
}

fn with(mut ok: Value, problems: &[u16]) -> Value {
    if let (Some(o), Value::Object(p)) = (ok.as_object_mut(), problem_responses(problems)) {
        o.extend(p);
    }
    ok
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

/// The OpenAPI document (members sorted, so its text is stable).
pub fn document() -> Value {
    sorted(unsorted_document())
}

fn unsorted_document() -> Value {
    let schema = sdx_codec::schema::json_schema();
    let defs = schema.get("$defs").cloned().unwrap_or_else(|| json!({}));
    // JSON Schema 2020-12 and OpenAPI 3.1 share the dialect; only the reference base differs.
    let defs: Value = serde_json::from_str(&defs.to_string().replace("#/$defs/", "#/components/schemas/"))
        .unwrap_or_else(|_| json!({}));
    let mut schemas = defs.as_object().cloned().unwrap_or_default();
    schemas.insert(
        "Problem".into(),
        json!({"type": "object", "required": ["type", "title", "status", "errorCode"],
               "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                              "detail": {"type": "string"}, "errorCode": {"$ref": "#/components/schemas/Code.ErrorCode"}}}),
    );
    schemas.insert(
        "CaseView".into(),
        json!({"type": "object", "required": ["case", "partner", "ourRole", "updatedAt"],
               "properties": {"case": {"$ref": "#/components/schemas/Case"},
                              "partner": {"$ref": "#/components/schemas/Organisationskennung"},
                              "ourRole": {"enum": ["originator", "assignee", "both"]},
                              "updatedAt": {"type": "string", "format": "date-time"},
                              "timeline": {"type": "array", "items": {"type": "object"}}}}),
    );
    // What `fields` returns: the selected members only; of the case, its id and the selected attributes.
    schemas.insert(
        "CaseViewSelection".into(),
        json!({"type": "object", "required": ["case"],
               "properties": {"case": {"type": "object", "required": ["caseId"],
                                       "properties": {"caseId": {"type": "string", "format": "uuid"}}},
                              "partner": {"$ref": "#/components/schemas/Organisationskennung"},
                              "ourRole": {"enum": ["originator", "assignee", "both"]},
                              "updatedAt": {"type": "string", "format": "date-time"},
                              "timeline": {"type": "array", "items": {"type": "object"}}}}),
    );
    schemas.insert(
        "Sent".into(),
        json!({"type": "object", "required": ["messageId", "case"],
               "properties": {"messageId": {"type": "string", "format": "uuid"},
                              "case": {"$ref": "#/components/schemas/Case"},
                              "delivered": {"type": "boolean", "description": "With waitForReceipt: whether the signed receipt is stored"}}}),
    );
    let case_id = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}});
    // TMF621 attribute selection: a comma-separated list (form style, not exploded) of top-level members of the
    // view or of its case.
    let fields = |members: &'static [&'static str]| {
        json!({"name": "fields", "in": "query", "required": false, "style": "form", "explode": false,
               "description": format!("TMF621 attribute selection: comma-separated names to return, each a top-level member of the view ({}) or a top-level attribute of the case (the members of Case, e.g. status, priority). A case attribute is returned inside case; an optional attribute the case does not have stays absent. updatedAt names both the view member and the case attribute and selects both. case.caseId is always returned: ?fields=status,partner gives {{\"case\": {{\"caseId\": …, \"status\": …}}, \"partner\": …}}; with case selected, the whole case is returned. Names are exact and may repeat; an unknown name, a nested path (a.b), an empty entry or an empty list is refused with 400 schemaViolation. Without fields, the full view.", members.join(", ")),
               "schema": {"type": "array", "minItems": 1, "items": {"enum": field_names(members)}}})
    };
    let q = |name: &str, desc: &str| json!({"name": name, "in": "query", "required": false, "description": desc, "schema": {"type": "string"}});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "SDX node",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Local API of an SDX node for the organisation's own ticket system and operators (bearer tokens), and the peer endpoint between nodes (mutual TLS). Schemas are those of the SDX JSON Schema.",
            "license": {"name": "EUPL-1.2", "identifier": "EUPL-1.2"}
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "One token per client; the node stores its SHA-256."},
                "mtls": {"type": "mutualTLS", "description": "Client certificate of the federation CA with urn:sdx:org:<key>."}
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/cases": {
                "post": {
                    "operationId": "createCase",
                    "summary": "Create a case and forward it to its assignee",
                    "parameters": [{"name": "waitForReceipt", "in": "query", "required": false,
                        "schema": {"type": "integer", "minimum": 0, "maximum": 60},
                        "description": "Answer only once the assignee's signed receipt is stored, or after this many seconds (at most 60); the answer then says delivered: true or false. The forward is committed either way."}],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["case"], "additionalProperties": false,
                        "properties": {"case": {"$ref": "#/components/schemas/Case"}, "note": {"type": "string"}}}}}},
                    "responses": with(json!({"201": {"description": "Committed; the forward is in the outbox",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Sent"}}}}}), &[400, 401, 409, 422])
                },
                "get": {
                    "operationId": "listCases",
                    "summary": "Query cases (keyset paging)",
                    "parameters": [
                        q("status", "comma-separated status codes"), q("ticketType", "ticket type code"),
                        q("priority", "priority code"), q("leikaKey", "LeiKa service key"),
                        q("region", "ARS or prefix"), q("partner", "organisation key"),
                        q("updatedSince", "RFC 3339"), q("cursor", "from nextCursor"),
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                        fields(ITEM_MEMBERS)
                    ],
                    "responses": with(json!({"200": {"description": "A page (with fields: each item holds only the selected members, and case only caseId and the selected case attributes unless case is selected)", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"items": {"type": "array", "items": {"anyOf": [{"$ref": "#/components/schemas/CaseView"}, {"$ref": "#/components/schemas/CaseViewSelection"}]}},
                                                          "nextCursor": {"type": ["string", "null"]}}}}}}}), &[400, 401])
                }
            },
            "/api/v1/cases/{id}": {
                "get": {
                    "operationId": "getCase",
                    "summary": "The case with its cross-organisation timeline",
                    "parameters": [case_id, fields(VIEW_MEMBERS)],
                    "responses": with(json!({"200": {"description": "The case (with fields: only the selected members, and case only caseId and the selected case attributes unless case is selected)", "content": {"application/json": {"schema": {"anyOf": [{"$ref": "#/components/schemas/CaseView"}, {"$ref": "#/components/schemas/CaseViewSelection"}]}}}}}), &[400, 401, 404])
                }
            },
            "/api/v1/cases/{id}/changes": {
                "post": {
                    "operationId": "changeCase",
                    "summary": "Apply a change (update, resolve, handBack, close, reopen, reject) and send it to the partner",
                    "parameters": [case_id],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Body"}}}},
                    "responses": with(json!({"200": {"description": "Committed; the message is in the outbox",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Sent"}}}}}), &[400, 401, 403, 404, 409, 422])
                }
            },
            "/api/v1/deliveries": {
                "get": {
                    "operationId": "listDeliveries",
                    "summary": "The outbox by state",
                    "parameters": [{"name": "state", "in": "query", "schema": {"enum": ["pending", "delivered", "dead"]}},
                                   {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
                    "responses": with(json!({"200": {"description": "Deliveries", "content": {"application/json": {"schema": {"type": "object"}}}}}), &[400, 401])
                }
            },
            "/api/v1/deliveries/{id}/retry": {
                "post": {
                    "operationId": "retryDelivery",
                    "summary": "Put a dead letter back into delivery",
                    "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}],
                    "responses": with(json!({"200": {"description": "Pending again"}}), &[400, 401, 404])
                }
            },
            "/api/v1/openapi.json": {
                "get": {"operationId": "openapi", "summary": "This document", "security": [],
                        "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}}}
            },
            "/sdx/v1/noop": {
                "post": {
                    "operationId": "noop",
                    "summary": "Transport baseline: reads the body on the same mutual-TLS stack and answers 204",
                    "security": [{"mtls": []}],
                    "requestBody": {"required": false, "content": {"application/octet-stream": {}}},
                    "responses": {"204": {"description": "Nothing"}}
                }
            },
            "/sdx/v1/messages": {
                "post": {
                    "operationId": "receiveMessage",
                    "summary": "Peer endpoint: one sealed SDX message (JWS over the RFC 8785 canonical JSON)",
                    "security": [{"mtls": []}],
                    "requestBody": {"required": true, "content": {"application/jose": {"schema": {"type": "string"}}}},
                    "responses": with(json!({"200": {"description": "The signed receipt (positive or negative), a JWS",
                        "content": {"application/jose": {"schema": {"type": "string"}}}}}), &[400, 403, 413, 503])
                }
            }
        }
    })
}
