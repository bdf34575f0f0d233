//! JSON Schema (draft 2020-12) of SDX messages in JSON.
//!
//! One `$defs` entry per [`TypeDesc`] (by `json_name`), per codelist (`Code.<Id>`, an `enum`), per identifier
//! form (`Ident::type_name`, a `pattern`) and one for timestamps (`Zeitpunkt`). Personal fields carry the
//! annotation `x-personalData: true`; TMF621 and ITIL equivalents appear as `x-tmf621` / `x-itil`.

use serde_json::{Map, Value, json};

use sdx_model::codelist::CodeList;

use super::{
    TIMESTAMP_TYPE, code_type_name, codelist_doc, field_doc, fixed_value, ident_doc, used_codelists, used_idents,
};
use crate::desc::{self, Field, Ident, Kind, Occurs, TypeDesc};

/// URI of the JSON Schema dialect used.
pub const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Name of the `$defs` entry of the body (exactly one member, named by the message type code).
const BODY_DEF: &str = "Body";

/// Pattern of a single-line text: no CR, no LF.
const LINE_PATTERN: &str = r"^[^\r\n]*$";

/// RFC 3339 date-time with an explicit offset (`Z` or `±hh:mm`); `T` and `Z` in either case as RFC 3339 allows.
const TIMESTAMP_PATTERN: &str =
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$";

fn def_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/$defs/{name}") })
}

/// The JSON Schema of an SDX message: an object with `header` and `body`, where `body` has exactly one
/// member named by the message type code (`forward`, `update`, …) and that code equals `header.messageType`.
pub fn json_schema() -> Value {
    let mut defs = Map::new();
    for t in desc::ALL_TYPES {
        defs.insert(t.json_name.to_owned(), type_def(t));
    }
    defs.insert(BODY_DEF.to_owned(), body_def());
    for list in used_codelists() {
        defs.insert(code_type_name(list), code_def(list));
    }
    for i in used_idents() {
        defs.insert(i.type_name().to_owned(), ident_def(i));
    }
    defs.insert(
        TIMESTAMP_TYPE.to_owned(),
        json!({
            "type": "string",
            "format": "date-time",
            "pattern": TIMESTAMP_PATTERN,
            "description": "Point in time, RFC 3339 with an explicit offset (Z or +hh:mm / -hh:mm).",
        }),
    );

    // header.messageType decides the body member.
    let consistency: Vec<Value> = desc::MESSAGES
        .iter()
        .map(|m| {
            json!({
                "if": {
                    "properties": { "header": { "properties": { "messageType": { "const": m.code } }, "required": ["messageType"] } },
                    "required": ["header"],
                },
                "then": { "properties": { "body": { "required": [m.code] } } },
            })
        })
        .collect();

    json!({
        "$schema": DIALECT,
        "$id": super::json_schema_id(),
        "title": "SDX message",
        "description": format!(
            "A message of SDX (exchange of support tickets between ticket systems of the public administration), schema version {}. Generated from the SDX format description; do not edit.",
            sdx_model::message::SCHEMA_VERSION
        ),
        "type": "object",
        "properties": {
            "header": def_ref(desc::HEADER.json_name),
            "body": def_ref(BODY_DEF),
        },
        "required": ["header", "body"],
        "additionalProperties": false,
        "allOf": consistency,
        "$defs": defs,
    })
}

fn type_def(t: &TypeDesc) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for fd in t.fields {
        props.insert(fd.json.to_owned(), field_schema(t, fd));
        if matches!(fd.occurs, Occurs::Required | Occurs::List { min1: true, .. }) {
            required.push(Value::from(fd.json));
        }
    }
    let mut m = Map::new();
    m.insert("type".into(), "object".into());
    m.insert("description".into(), t.doc.into());
    m.insert("properties".into(), Value::Object(props));
    if !required.is_empty() {
        m.insert("required".into(), Value::Array(required));
    }
    m.insert("additionalProperties".into(), false.into());
    Value::Object(m)
}

fn body_def() -> Value {
    let props: Map<String, Value> = desc::MESSAGES
        .iter()
        .map(|m| {
            let mut s = def_ref(m.body.json_name);
            s["description"] = format!("{} XML root element: {}.", m.body.doc, m.root).into();
            (m.code.to_owned(), s)
        })
        .collect();
    json!({
        "type": "object",
        "description": "The body: exactly one member, named by the message type code (codelist messageType).",
        "properties": props,
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": false,
    })
}

fn field_schema(t: &TypeDesc, fd: &Field) -> Value {
    let item = kind_schema(fd.kind);
    let mut s = match fd.occurs {
        Occurs::List { max, min1 } => {
            let mut a = Map::new();
            a.insert("type".into(), "array".into());
            a.insert("items".into(), item);
            if min1 {
                a.insert("minItems".into(), 1.into());
            }
            if max != usize::MAX {
                a.insert("maxItems".into(), max.into());
            }
            a
        }
        Occurs::Required | Occurs::Optional => match item {
            Value::Object(m) => m,
            _ => unreachable!("kind schemas are objects"),
        },
    };
    if let Some(v) = fixed_value(t, fd) {
        s.insert("const".into(), v.into());
    }
    s.insert("description".into(), field_doc(fd).into());
    if !fd.tmf621.is_empty() {
        s.insert("x-tmf621".into(), fd.tmf621.into());
    }
    if !fd.itil.is_empty() {
        s.insert("x-itil".into(), fd.itil.into());
    }
    if fd.personal {
        s.insert("x-personalData".into(), true.into());
    }
    Value::Object(s)
}

fn kind_schema(kind: Kind) -> Value {
    match kind {
        Kind::Text { max, line } => {
            let mut m = Map::new();
            m.insert("type".into(), "string".into());
            if max != usize::MAX {
                m.insert("maxLength".into(), max.into());
            }
            if line {
                m.insert("pattern".into(), LINE_PATTERN.into());
            }
            Value::Object(m)
        }
        Kind::Code(list) => def_ref(&code_type_name(list)),
        Kind::Ident(i) => def_ref(i.type_name()),
        Kind::Timestamp => def_ref(TIMESTAMP_TYPE),
        Kind::UInt { max } => json!({ "type": "integer", "minimum": 0, "maximum": max }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::Object(t) => def_ref(t.json_name),
    }
}

fn code_def(list: &CodeList) -> Value {
    let codes: Vec<&str> = list.entries.iter().map(|e| e.code).collect();
    json!({
        "type": "string",
        "enum": codes,
        "description": codelist_doc(list),
        "x-codelist": { "uri": list.urn, "version": list.version },
    })
}

fn ident_def(i: Ident) -> Value {
    json!({
        "type": "string",
        "pattern": format!("^(?:{})$", i.pattern()),
        "description": ident_doc(i),
    })
}
