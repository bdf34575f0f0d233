//! Strict JSON object parsing for JOSE headers and JWKs: RFC 7515 §5.2 and
//! RFC 7517 §4 allow rejecting duplicate member names, and SDX does, at every
//! nesting level, because two parsers that pick different duplicates disagree
//! on what was signed.

use crate::error::{Error, Result};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Parses `bytes` as one JSON object; rejects duplicate keys anywhere,
/// trailing data, invalid UTF-8, and non-object top-level values.
pub(crate) fn parse_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>> {
    let Strict(value) = serde_json::from_slice::<Strict>(bytes)
        .map_err(|e| Error::malformed(format!("{what} is not valid JSON: {}", classify(&e))))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(Error::malformed(format!("{what} is not a JSON object"))),
    }
}

fn classify(e: &serde_json::Error) -> String {
    // serde_json messages may quote input; keep only our own duplicate-key text
    // and the position.
    let msg = e.to_string();
    if msg.starts_with("duplicate member") {
        msg
    } else {
        format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column())
    }
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Strict, E> {
        Number::from_f64(v).map(|n| Strict(Value::Number(n))).ok_or_else(|| E::custom("non-finite number"))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }
    fn visit_unit<E>(self) -> std::result::Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_none<E>(self) -> std::result::Result<Strict, E> {
        Ok(Strict(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Strict, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element::<Strict>()? {
            out.push(v);
        }
        Ok(Strict(Value::Array(out)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Strict, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate member {:?}", crate::alg::truncate(&key))));
            }
            let Strict(v) = map.next_value::<Strict>()?;
            out.insert(key, v);
        }
        Ok(Strict(Value::Object(out)))
    }
}

/// Reads an optional string member; `Err` if present with another type.
pub(crate) fn opt_str(map: &Map<String, Value>, name: &str, what: &str) -> Result<Option<String>> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::malformed(format!("{what} member {name:?} must be a string"))),
    }
}

/// JSON-encodes a string (with quotes and escapes).
pub(crate) fn quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_duplicates_at_any_depth() {
        assert!(parse_object(br#"{"a":1,"a":2}"#, "x").is_err());
        assert!(parse_object(br#"{"a":{"b":1,"b":1}}"#, "x").is_err());
        assert!(parse_object(br#"{"a":[{"b":1,"b":1}]}"#, "x").is_err());
        let e = parse_object(br#"{"alg":"ES256","alg":"none"}"#, "x").unwrap_err();
        assert!(e.to_string().contains("duplicate member"), "{e}");
    }

    #[test]
    fn rejects_non_objects_and_trailing_data() {
        assert!(parse_object(b"[]", "x").is_err());
        assert!(parse_object(b"{} {}", "x").is_err());
        assert!(parse_object(b"{\"a\":\xff}", "x").is_err());
        assert!(parse_object(b"", "x").is_err());
        let deep = "[".repeat(10_000);
        assert!(parse_object(format!("{{\"a\":{deep}").as_bytes(), "x").is_err());
    }

    #[test]
    fn accepts_plain_objects() {
        let m = parse_object(br#"{"a":1.5,"b":[true,null],"c":{"d":"e"},"f":-3}"#, "x").unwrap();
        assert_eq!(m.len(), 4);
    }
}
