//! The format description (`desc`) and the serde model are in lock-step, and every message that the
//! description allows survives JSON → XML → JSON and XML → JSON → XML unchanged.
//!
//! Messages are generated from the description itself (every field, random lists, random codes and random
//! text including XML-special characters), so a field added to the model but not to the description, or the
//! other way round, fails here.

use proptest::prelude::*;
use sdx_codec::desc::{self, Ident, Kind, Occurs, TypeDesc};
use sdx_codec::{json, xml};
use sdx_model as m;
use serde::de::{self, DeserializeOwned, Visitor};
use serde_json::{Map, Value};

/// A deserializer that only records the field names serde asks for.
struct Capture(Vec<&'static str>);

impl<'de> de::Deserializer<'de> for &mut Capture {
    type Error = de::value::Error;
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = fields.to_vec();
        Err(de::Error::custom("captured"))
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = variants.to_vec();
        Err(de::Error::custom("captured"))
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map identifier ignored_any
    }
}

fn fields_of<T: DeserializeOwned>() -> Vec<&'static str> {
    let mut c = Capture(Vec::new());
    let _ = T::deserialize(&mut c);
    let mut v = c.0;
    v.sort_unstable();
    v
}

fn desc_fields(t: &TypeDesc) -> Vec<&'static str> {
    let mut v: Vec<_> = t.fields.iter().map(|f| f.json).collect();
    v.sort_unstable();
    v
}

#[test]
fn description_matches_the_model_field_by_field() {
    let pairs: Vec<(&TypeDesc, Vec<&str>)> = vec![
        (&desc::HEADER, fields_of::<m::Header>()),
        (&desc::PARTICIPANT, fields_of::<m::Participant>()),
        (&desc::CASE, fields_of::<m::Case>()),
        (&desc::EXTERNAL_REFERENCE, fields_of::<m::ExternalReference>()),
        (&desc::STATUS_CHANGE, fields_of::<m::StatusChange>()),
        (&desc::CATEGORY, fields_of::<m::Category>()),
        (&desc::SERVICE_REF, fields_of::<m::ServiceRef>()),
        (&desc::PARTY, fields_of::<m::Party>()),
        (&desc::CONTACT_POINT, fields_of::<m::ContactPoint>()),
        (&desc::REQUESTER, fields_of::<m::Requester>()),
        (&desc::JOURNAL_ENTRY, fields_of::<m::JournalEntry>()),
        (&desc::AUTHOR, fields_of::<m::Author>()),
        (&desc::ATTACHMENT, fields_of::<m::Attachment>()),
        (&desc::SOLUTION, fields_of::<m::Solution>()),
        (&desc::RELATED_CASE, fields_of::<m::RelatedCase>()),
        (&desc::SERVICE_LEVEL, fields_of::<m::ServiceLevel>()),
        (&desc::FORWARD, fields_of::<m::Forward>()),
        (&desc::UPDATE, fields_of::<m::Update>()),
        (&desc::RESOLVE, fields_of::<m::Resolve>()),
        (&desc::HAND_BACK, fields_of::<m::HandBack>()),
        (&desc::CLOSE, fields_of::<m::Close>()),
        (&desc::REOPEN, fields_of::<m::Reopen>()),
        (&desc::REJECT, fields_of::<m::Reject>()),
        (&desc::RECEIPT, fields_of::<m::Receipt>()),
        (&desc::RECEIPT_ERROR, fields_of::<m::ReceiptError>()),
        (&desc::SERVICE_NOTICE, fields_of::<m::ServiceNotice>()),
    ];
    assert_eq!(pairs.len(), desc::ALL_TYPES.len(), "every described type is checked");
    for (t, model) in pairs {
        assert!(!model.is_empty(), "{}: no fields captured", t.json_name);
        assert_eq!(desc_fields(t), model, "{} differs between desc.rs and the model", t.json_name);
    }
    let mut variants = fields_of::<m::Body>();
    let mut codes: Vec<_> = desc::MESSAGES.iter().map(|md| md.code).collect();
    variants.sort_unstable();
    codes.sort_unstable();
    assert_eq!(variants, codes);
    for code in &codes {
        assert!(
            <m::MessageType as m::Coded>::VALUES.iter().any(|t| m::Coded::code(*t) == *code),
            "{code} is a message type"
        );
    }
}

/// Tiny deterministic generator (xorshift), seeded by proptest.
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn text(&mut self, line: bool) -> String {
        const PIECES: &[&str] = &[
            "Wohngeld", "ä", "ß", "€", "<", ">", "&", "\"", "'", "]]>", " ", "\t", "𝄞", "&amp;", "Antrag", "x",
            "\u{a0}",
        ];
        let n = 1 + self.below(6);
        let mut s = String::from("T");
        for _ in 0..n {
            s.push_str(PIECES[self.below(PIECES.len() as u64) as usize]);
            if !line && self.below(5) == 0 {
                s.push_str(if self.below(2) == 0 { "\n" } else { "\r\n" });
            }
        }
        s
    }
}

fn ident(i: Ident, g: &mut Gen) -> String {
    match i {
        Ident::Uuid => format!("{:08x}-1111-4222-8333-{:012x}", g.next() as u32, g.next() & 0xffff_ffff_ffff),
        Ident::Leika => format!("99{:012}", g.below(1_000_000_000_000)),
        Ident::Ars => ["06", "064", "06412", "064120000", "064120000000"][g.below(5) as usize].to_string(),
        Ident::OrgKey => format!("psw:{:08}", g.below(100_000_000)),
        Ident::OzgId => format!("OZG-{}", g.below(10_000)),
        Ident::Sha256 => format!("{:064x}", g.next()),
        Ident::MediaType => ["application/pdf", "image/png", "text/plain; charset=utf-8"][g.below(3) as usize].into(),
    }
}

fn value(kind: Kind, g: &mut Gen, json: &str) -> Value {
    match kind {
        Kind::Text { line, .. } if json == "content" => {
            let _ = line;
            Value::String("aGFsbG8=".into())
        }
        Kind::Text { line, .. } => Value::String(g.text(line)),
        Kind::Code(l) => Value::String(l.entries[g.below(l.entries.len() as u64) as usize].code.into()),
        Kind::Ident(i) => Value::String(ident(i, g)),
        Kind::Timestamp => Value::String(
            ["2026-11-29T10:00:00Z", "2026-11-29T10:00:00.5+01:00", "2026-01-01T00:00:00-05:30"][g.below(3) as usize]
                .into(),
        ),
        Kind::UInt { max } => Value::from(g.below(max.min(1_000_000))),
        Kind::Bool => Value::Bool(g.below(2) == 0),
        Kind::Object(t) => object(t, g),
    }
}

fn object(t: &TypeDesc, g: &mut Gen) -> Value {
    let mut m = Map::new();
    for f in t.fields {
        match f.occurs {
            Occurs::Required => {
                m.insert(f.json.into(), value(f.kind, g, f.json));
            }
            Occurs::Optional => {
                if g.below(4) != 0 {
                    m.insert(f.json.into(), value(f.kind, g, f.json));
                }
            }
            Occurs::List { min1, .. } => {
                let n = g.below(3) + u64::from(min1);
                if n > 0 {
                    m.insert(f.json.into(), Value::Array((0..n).map(|_| value(f.kind, g, f.json)).collect()));
                }
            }
        }
    }
    // Booleans that are false are not written (absent == false).
    if m.get("test") == Some(&Value::Bool(false)) {
        m.remove("test");
    }
    Value::Object(m)
}

fn message(seed: u64) -> m::Message {
    let mut g = Gen(seed | 1);
    let md = &desc::MESSAGES[g.below(desc::MESSAGES.len() as u64) as usize];
    let mut header = object(&desc::HEADER, &mut g);
    header["messageType"] = Value::String(md.code.into());
    let mut body = Map::new();
    body.insert(md.code.into(), object(md.body, &mut g));
    let doc = serde_json::json!({ "header": header, "body": body });
    serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("generated message does not type: {e}\n{doc:#}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn json_xml_json_is_lossless(seed in any::<u64>()) {
        let msg = message(seed);
        let x = xml::encode(&msg);
        let from_xml = xml::decode(x.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e:?}\n{x}")))?;
        prop_assert_eq!(json::canonical(&from_xml), json::canonical(&msg));
        let j = json::encode(&from_xml);
        let again = json::decode(j.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(&again, &msg);
        // XML → JSON → XML gives the same XML text.
        prop_assert_eq!(xml::encode(&again), x);
    }

    #[test]
    fn canonical_form_is_rfc8785(seed in any::<u64>()) {
        // The fast canonical writer gives the bytes of the reference implementation.
        let msg = message(seed);
        prop_assert_eq!(json::canonical(&msg), serde_json_canonicalizer::to_string(&msg).unwrap());
    }
}
