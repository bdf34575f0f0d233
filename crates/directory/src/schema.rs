//! The JSON Schema (draft 2020-12) of the directory document, generated here from the codelists of `sdx-model`
//! and the crate's constants; committed as `docs/schemas/directory.schema.json` (a test keeps the file equal to
//! [`json_schema`]).
//!
//! The schema checks structure, identifier forms and codes. What it cannot say — unique organisation keys,
//! responsibilities naming listed organisations, hubs with the `hub` role, transitions of the SDX lifecycle,
//! keys whose `kid` is their thumbprint, `expiresAt` after `issuedAt` — [`crate::Directory::from_json`] checks.

use serde_json::{Value, json};

use sdx_model::{Coded, MessageType, Status, SupportLevel};

use crate::document::{MAX_CERTIFICATE_BYTES, MAX_NAME_CHARS, MAX_SAFE_INTEGER, MAX_URL_BYTES, NATIONWIDE, Role};

/// `$id` of the schema.
pub const SCHEMA_ID: &str = "urn:xoev-de:sdx:schema:directory:1.0";
/// Where the schema is committed, relative to the repository root.
pub const SCHEMA_PATH: &str = "docs/schemas/directory.schema.json";

fn codes<T: Coded>() -> Value {
    Value::from(T::VALUES.iter().map(|v| v.code()).collect::<Vec<_>>())
}

fn code_def<T: Coded>() -> Value {
    json!({
        "type": "string",
        "enum": codes::<T>(),
        "description": format!("Codeliste {} ({}), {} version {}.", T::LIST.id, T::LIST.name_de, T::LIST.urn, T::LIST.version),
    })
}

fn list(item: &str, min: u64) -> Value {
    json!({ "type": "array", "items": { "$ref": format!("#/$defs/{item}") }, "minItems": min, "uniqueItems": true })
}

/// The schema.
#[must_use]
pub fn json_schema() -> Value {
    let roles: Vec<&str> = Role::ALL.iter().map(|r| r.code()).collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "SDX directory of responsibilities",
        "description": "Organisations of the SDX federation (endpoint, TLS identity, signing keys, accepted message types, capabilities) and who is responsible for which service in which region at which support level. Signed by the directory authority as a compact JWS over the RFC 8785 canonical form (see docs/routing.md).",
        "type": "object",
        "additionalProperties": false,
        "required": ["schemaVersion", "version", "issuedAt", "expiresAt", "issuer", "organisations", "responsibilities"],
        "properties": {
            "schemaVersion": { "const": crate::document::SCHEMA_VERSION },
            "version": { "$ref": "#/$defs/PositiveInteger", "description": "Edition of the directory; a node never goes back to a lower one." },
            "issuedAt": { "$ref": "#/$defs/Zeitpunkt", "description": "Not valid before (beyond a small clock skew)." },
            "expiresAt": { "$ref": "#/$defs/Zeitpunkt", "description": "Not valid from then on; later than issuedAt." },
            "issuer": { "$ref": "#/$defs/Organisationskennung", "description": "The directory authority." },
            "organisations": { "type": "array", "items": { "$ref": "#/$defs/Organisation" } },
            "responsibilities": { "type": "array", "items": { "$ref": "#/$defs/Responsibility" } }
        },
        "$defs": {
            "Organisation": {
                "type": "object",
                "additionalProperties": false,
                "required": ["key", "name", "roles", "endpoint"],
                "description": "One organisation of the federation; keys unique in the directory.",
                "properties": {
                    "key": { "$ref": "#/$defs/Organisationskennung" },
                    "name": { "type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, "pattern": "^[^\\u0000-\\u001f\\u007f]*$" },
                    "roles": { "type": "array", "items": { "enum": roles }, "minItems": 1, "uniqueItems": true },
                    "endpoint": { "$ref": "#/$defs/Endpoint" },
                    "tls": { "$ref": "#/$defs/Tls" },
                    "signingKeys": { "type": "array", "items": { "$ref": "#/$defs/SigningKey" }, "uniqueItems": true },
                    "encryptionKeys": { "type": "array", "items": { "$ref": "#/$defs/EncryptionKey" }, "uniqueItems": true },
                    "messageTypes": list("Code.MessageType", 0),
                    "capabilities": { "$ref": "#/$defs/Capabilities" }
                }
            },
            "Endpoint": {
                "description": "The https:// URL of the organisation's node, or the hub (an organisation with role hub and a URL) it is reached through.",
                "oneOf": [
                    { "type": "string", "maxLength": MAX_URL_BYTES, "pattern": "^https://[^\\s/?#@:][^\\s/?#@]*([/?][^\\s#]*)?$" },
                    { "type": "object", "additionalProperties": false, "required": ["viaHub"], "properties": { "viaHub": { "$ref": "#/$defs/Organisationskennung" } } }
                ]
            },
            "Tls": {
                "type": "object",
                "additionalProperties": false,
                "description": "The TLS identity of the organisation's node.",
                "properties": {
                    "certificateSha256": list("SHA256", 0),
                    "certificates": { "type": "array", "items": { "type": "string", "maxLength": MAX_CERTIFICATE_BYTES, "pattern": "^\\s*-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\\s]+-----END CERTIFICATE-----\\s*$" } }
                }
            },
            "SigningKey": {
                "type": "object",
                "description": "Public JWK (RFC 7517) of an ES256 (EC P-256) or PS512 (RSA) signing key; kid, if present, is the RFC 7638 thumbprint. No private members.",
                "required": ["kty"],
                "properties": {
                    "kty": { "enum": ["EC", "RSA"] },
                    "alg": { "enum": ["ES256", "PS512"] },
                    "use": { "const": "sig" },
                    "kid": { "type": "string", "minLength": 1 }
                },
                "not": { "anyOf": [ { "required": ["d"] }, { "required": ["p"] }, { "required": ["q"] }, { "required": ["k"] } ] }
            },
            "EncryptionKey": {
                "type": "object",
                "description": "Public JWK (RFC 7517) of an RSA-OAEP-256 key (RSA, at least 3072 bits) that messages through a hub are encrypted to; kid, if present, is the RFC 7638 thumbprint. No private members.",
                "required": ["kty"],
                "properties": {
                    "kty": { "const": "RSA" },
                    "alg": { "const": "RSA-OAEP-256" },
                    "use": { "const": "enc" },
                    "kid": { "type": "string", "minLength": 1 }
                },
                "not": { "anyOf": [ { "required": ["d"] }, { "required": ["p"] }, { "required": ["q"] }, { "required": ["k"] } ] }
            },
            "Capabilities": {
                "type": "object",
                "additionalProperties": false,
                "description": "What the organisation's workflow supports; absent members mean the SDX lifecycle and limits.",
                "properties": {
                    "statuses": list("Code.Status", 0),
                    "transitions": { "type": "array", "uniqueItems": true, "items": {
                        "type": "object", "additionalProperties": false, "required": ["from", "to"],
                        "properties": { "from": { "$ref": "#/$defs/Code.Status" }, "to": { "$ref": "#/$defs/Code.Status" } }
                    } },
                    "maxAttachmentBytes": { "$ref": "#/$defs/PositiveInteger" },
                    "maxAttachments": { "$ref": "#/$defs/PositiveInteger" },
                    "maxTextChars": { "$ref": "#/$defs/PositiveInteger" }
                }
            },
            "Responsibility": {
                "type": "object",
                "additionalProperties": false,
                "required": ["services", "regions", "level", "organisation"],
                "description": "The organisation is responsible at this level for every listed service in every listed region.",
                "properties": {
                    "services": list("Service", 1),
                    "regions": list("Region", 1),
                    "level": { "$ref": "#/$defs/Code.SupportLevel" },
                    "organisation": { "$ref": "#/$defs/Organisationskennung" },
                    "rank": { "type": "integer", "minimum": 0, "maximum": u32::MAX, "description": "Lower first among organisations of the same service, region and level; default 0." }
                }
            },
            "Service": {
                "type": "object",
                "description": "A service by LeiKa key or by OZG id.",
                "minProperties": 1,
                "maxProperties": 1,
                "additionalProperties": false,
                "properties": {
                    "leikaKey": { "$ref": "#/$defs/Leistungsschluessel" },
                    "ozgId": { "$ref": "#/$defs/OZGID" }
                }
            },
            "Region": {
                "type": "string",
                "description": "An ARS prefix (2 Land, 3 Regierungsbezirk, 5 Kreis, 9 Gemeindeverband, 12 Gemeinde digits) or \"nationwide\".",
                "pattern": format!("^(?:{NATIONWIDE}|[0-9]{{2}}|[0-9]{{3}}|[0-9]{{5}}|[0-9]{{9}}|[0-9]{{12}})$")
            },
            "Code.Status": code_def::<Status>(),
            "Code.MessageType": code_def::<MessageType>(),
            "Code.SupportLevel": code_def::<SupportLevel>(),
            "Organisationskennung": {
                "type": "string",
                "description": "Organisation key as in the DVDV: three lowercase letters, a colon and 1-64 of [A-Za-z0-9._-], e.g. psw:01003110.",
                "pattern": "^(?:[a-z]{3}:[A-Za-z0-9._-]{1,64})$"
            },
            "Leistungsschluessel": {
                "type": "string",
                "description": "Leistungsschluessel (LeiKa key): 14 digits starting with 99.",
                "pattern": "^(?:99[0-9]{12})$"
            },
            "OZGID": {
                "type": "string",
                "description": "OZG id of an online service: 1-64 printable ASCII characters without spaces.",
                "pattern": "^(?:[!-~]{1,64})$"
            },
            "SHA256": {
                "type": "string",
                "description": "SHA-256 digest as 64 lowercase hexadecimal digits.",
                "pattern": "^(?:[0-9a-f]{64})$"
            },
            "Zeitpunkt": {
                "type": "string",
                "format": "date-time",
                "description": "RFC 3339 timestamp with an explicit offset (Z or +hh:mm / -hh:mm).",
                "pattern": "(?:Z|[+-][0-9]{2}:[0-9]{2})$"
            },
            "PositiveInteger": { "type": "integer", "minimum": 1, "maximum": MAX_SAFE_INTEGER }
        }
    })
}

/// The schema as the committed file holds it: pretty-printed, keys sorted (whether or not serde_json keeps
/// insertion order in this build), with a final newline.
#[must_use]
pub fn json_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&sorted(json_schema())).unwrap_or_default();
    s.push('\n');
    s
}

/// `v` with every object's keys in sorted order.
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
