//! RFC 8785 (JSON Canonicalization Scheme) written straight from a `Serialize` value, without building a
//! `serde_json::Value` first: each object's members sorted by their UTF-16 code units, strings with exactly the
//! escapes of RFC 8785 (§ 3.2.2.2), integers as they are. The result is what `serde_json::to_value` followed by
//! canonicalisation gives (later members of an object win over earlier ones of the same name, as in a `Value`).
//! Floating-point numbers and integers beyond ±2^53 are refused ([`Unsupported`]): ECMAScript's number formatting
//! is left to the general implementation, which the caller falls back to.

use std::borrow::Cow;
use std::fmt::Display;

use serde::ser::{self, Serialize};

/// The value cannot be written here (a floating-point number, an integer beyond ±2^53, a map key that is no
/// string or integer, or an error of the value's own serialization).
#[derive(Debug)]
pub(crate) struct Unsupported(String);

impl Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: Display>(msg: T) -> Self {
        Unsupported(msg.to_string())
    }
}

/// The canonical form of `v`.
pub(crate) fn to_string<T: Serialize + ?Sized>(v: &T) -> Result<String, Unsupported> {
    let mut out = String::with_capacity(4096);
    v.serialize(Writer { out: &mut out })?;
    Ok(out)
}

/// A JSON string as RFC 8785 writes it: quote and backslash escaped, the control characters as `\b \t \n \f \r`
/// or `\u00xx` (lower-case hex), everything else as it is.
fn write_str(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    // Only ASCII bytes are escaped, so the text between them is cut at character boundaries.
    let mut clean = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if !ESCAPED[usize::from(b)] {
            continue;
        }
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0c => "\\f",
            b'\r' => "\\r",
            // The other control characters.
            _ => "",
        };
        out.push_str(&s[clean..i]);
        if escaped.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escaped);
        }
        clean = i + 1;
    }
    out.push_str(&s[clean..]);
    out.push('"');
}

/// The bytes [`write_str`] escapes: the control characters, quote and backslash.
const ESCAPED: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// The start of an enum variant with data, `{"variant":` (closed after the data).
fn open_variant(variant: &str, out: &mut String) {
    out.push('{');
    write_str(variant, out);
    out.push(':');
}

/// RFC 8785's order of member names: by UTF-16 code units (for ASCII names, by bytes).
fn by_utf16(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() { a.cmp(b) } else { a.encode_utf16().cmp(b.encode_utf16()) }
}

/// The integer methods of a `serde` serializer, each handing its value to the serializer's own `int`.
macro_rules! integers {
    ($ok:ty; $($method:ident: $t:ty),*) => {$(
        fn $method(self, v: $t) -> Result<$ok, Unsupported> {
            self.int(v)
        }
    )*};
}

/// Writes one value into `out`.
struct Writer<'a> {
    out: &'a mut String,
}

/// The largest integer an IEEE double (RFC 8785's number) holds exactly.
const EXACT: i128 = 1 << 53;

impl Writer<'_> {
    /// An integer as its digits — within ±2^53, where RFC 8785 (ECMAScript) writes exactly those; beyond, it
    /// writes the nearest double, which is left to the general implementation.
    fn int(self, v: impl itoa::Integer + Into<i128>) -> Result<(), Unsupported> {
        if !(-EXACT..=EXACT).contains(&v.into()) {
            return Err(Unsupported("an integer beyond 2^53".into()));
        }
        self.out.push_str(itoa::Buffer::new().format(v));
        Ok(())
    }
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Array<'a>;
    type SerializeTuple = Array<'a>;
    type SerializeTupleStruct = Array<'a>;
    type SerializeTupleVariant = Array<'a>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Object<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Unsupported> {
        self.out.push_str(if v { "true" } else { "false" });
        Ok(())
    }
    integers!((); serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64, serialize_i128: i128,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64);
    fn serialize_u128(self, v: u128) -> Result<(), Unsupported> {
        i128::try_from(v).map_err(|_| Unsupported("an integer beyond 2^53".into())).and_then(|v| self.int(v))
    }
    fn serialize_f32(self, _: f32) -> Result<(), Unsupported> {
        Err(Unsupported("a floating-point number".into()))
    }
    fn serialize_f64(self, _: f64) -> Result<(), Unsupported> {
        Err(Unsupported("a floating-point number".into()))
    }
    fn serialize_char(self, v: char) -> Result<(), Unsupported> {
        write_str(v.encode_utf8(&mut [0; 4]), self.out);
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Unsupported> {
        write_str(v, self.out);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Unsupported> {
        // As serde_json: an array of numbers.
        self.out.push('[');
        for (i, b) in v.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(itoa::Buffer::new().format(*b));
        }
        self.out.push(']');
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Unsupported> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Unsupported> {
        self.out.push_str("null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Unsupported> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<(), Unsupported> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result<(), Unsupported> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Unsupported> {
        open_variant(variant, self.out);
        value.serialize(Writer { out: self.out })?;
        self.out.push('}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Array<'a>, Unsupported> {
        self.out.push('[');
        Ok(Array { out: self.out, first: true, variant: false })
    }
    fn serialize_tuple(self, len: usize) -> Result<Array<'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Array<'a>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Array<'a>, Unsupported> {
        open_variant(variant, self.out);
        self.out.push('[');
        Ok(Array { out: self.out, first: true, variant: true })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Object<'a>, Unsupported> {
        Ok(Object::new(self.out, len.unwrap_or(8), false))
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Object<'a>, Unsupported> {
        Ok(Object::new(self.out, len, false))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Object<'a>, Unsupported> {
        open_variant(variant, self.out);
        Ok(Object::new(self.out, len, true))
    }
}

/// An array being written (elements keep their order); for a tuple variant, inside `{"variant":…}`.
struct Array<'a> {
    out: &'a mut String,
    first: bool,
    variant: bool,
}

impl Array<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        value.serialize(Writer { out: self.out })
    }

    fn close(self) -> Result<(), Unsupported> {
        self.out.push_str(if self.variant { "]}" } else { "]" });
        Ok(())
    }
}

/// serde's four array traits: each writes its elements in order.
macro_rules! array_traits {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Array<'_> {
            type Ok = ();
            type Error = Unsupported;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
                self.element(value)
            }
            fn end(self) -> Result<(), Unsupported> {
                self.close()
            }
        }
    )*};
}

array_traits!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// An object being written: the members' values are written one after the other into one buffer, and sorted
/// by name when the object is closed; for a struct variant, inside `{"variant":…}`.
struct Object<'a> {
    out: &'a mut String,
    /// Each member's name and where its value is in `values`.
    members: Vec<(Cow<'static, str>, std::ops::Range<usize>)>,
    values: String,
    key: Option<String>,
    variant: bool,
}

impl<'a> Object<'a> {
    fn new(out: &'a mut String, len: usize, variant: bool) -> Self {
        Object { out, members: Vec::with_capacity(len), values: String::with_capacity(len * 24), key: None, variant }
    }

    fn member<T: Serialize + ?Sized>(&mut self, key: Cow<'static, str>, value: &T) -> Result<(), Unsupported> {
        let start = self.values.len();
        value.serialize(Writer { out: &mut self.values })?;
        self.members.push((key, start..self.values.len()));
        Ok(())
    }

    fn close(mut self) -> Result<(), Unsupported> {
        // Stable: of members with the same name, the last one stays (as in a `serde_json::Value`).
        self.members.sort_by(|(a, _), (b, _)| by_utf16(a, b));
        self.out.reserve(self.values.len() + self.members.len() * 24 + 2);
        self.out.push('{');
        let n = self.members.len();
        let mut first = true;
        for i in 0..n {
            if i + 1 < n && self.members[i].0 == self.members[i + 1].0 {
                continue;
            }
            if !first {
                self.out.push(',');
            }
            first = false;
            let (k, range) = &self.members[i];
            write_str(k, self.out);
            self.out.push(':');
            self.out.push_str(&self.values[range.clone()]);
        }
        self.out.push_str(if self.variant { "}}" } else { "}" });
        Ok(())
    }
}

/// serde's two struct traits: each member under its field name.
macro_rules! struct_traits {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Object<'_> {
            type Ok = ();
            type Error = Unsupported;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Unsupported> {
                self.member(Cow::Borrowed(key), value)
            }
            fn end(self) -> Result<(), Unsupported> {
                self.close()
            }
        }
    )*};
}

struct_traits!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Unsupported> {
        self.key = Some(key.serialize(KeyWriter)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Unsupported> {
        let key = self.key.take().ok_or_else(|| Unsupported("a map value without its key".into()))?;
        self.member(Cow::Owned(key), value)
    }
    fn end(self) -> Result<(), Unsupported> {
        self.close()
    }
}

/// A map key as the text of a member name: strings, characters, integers (as `serde_json` writes them) and unit
/// variants; anything else is [`Unsupported`].
struct KeyWriter;

impl KeyWriter {
    fn int(self, v: impl itoa::Integer) -> Result<String, Unsupported> {
        Ok(itoa::Buffer::new().format(v).to_string())
    }
}

fn no_key<T>() -> Result<T, Unsupported> {
    Err(Unsupported("a map key that is not a string".into()))
}

impl ser::Serializer for KeyWriter {
    type Ok = String;
    type Error = Unsupported;
    type SerializeSeq = ser::Impossible<String, Unsupported>;
    type SerializeTuple = ser::Impossible<String, Unsupported>;
    type SerializeTupleStruct = ser::Impossible<String, Unsupported>;
    type SerializeTupleVariant = ser::Impossible<String, Unsupported>;
    type SerializeMap = ser::Impossible<String, Unsupported>;
    type SerializeStruct = ser::Impossible<String, Unsupported>;
    type SerializeStructVariant = ser::Impossible<String, Unsupported>;

    fn serialize_str(self, v: &str) -> Result<String, Unsupported> {
        Ok(v.to_string())
    }
    fn serialize_char(self, v: char) -> Result<String, Unsupported> {
        Ok(v.to_string())
    }
    integers!(String; serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64);
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<String, Unsupported> {
        Ok(variant.to_string())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<String, Unsupported> {
        value.serialize(self)
    }
    fn serialize_bool(self, _: bool) -> Result<String, Unsupported> {
        no_key()
    }
    fn serialize_f32(self, _: f32) -> Result<String, Unsupported> {
        no_key()
    }
    fn serialize_f64(self, _: f64) -> Result<String, Unsupported> {
        no_key()
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<String, Unsupported> {
        no_key()
    }
    fn serialize_none(self) -> Result<String, Unsupported> {
        no_key()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, Unsupported> {
        no_key()
    }
    fn serialize_unit(self) -> Result<String, Unsupported> {
        no_key()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String, Unsupported> {
        no_key()
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, Unsupported> {
        no_key()
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Unsupported> {
        no_key()
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Unsupported> {
        no_key()
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Unsupported> {
        no_key()
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        no_key()
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
        no_key()
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Unsupported> {
        no_key()
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        no_key()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    fn reference(v: &serde_json::Value) -> String {
        serde_json_canonicalizer::to_string(v).unwrap()
    }

    #[test]
    fn values_of_every_shape_match_the_reference() {
        let values = [
            json!(null),
            json!(true),
            json!([]),
            json!({}),
            json!(-9_007_199_254_740_992_i64),
            json!(9_007_199_254_740_992_u64),
            json!({"b": 1, "a": [true, null, -3, {"z": {}, "y": []}], "\u{e9}": "x", "\u{1d11e}": 0, "\u{ff61}": 1}),
            json!({"q": "\"\\/\u{1}\u{8}\u{9}\u{a}\u{c}\u{d}\u{1f}\u{7f}\u{2028} é 𝄞 \u{fffd}"}),
            json!(["", "a\u{0}b", "\u{10ffff}"]),
        ];
        for v in values {
            assert_eq!(super::to_string(&v).unwrap(), reference(&v), "{v}");
        }
        // Floats and integers a double does not hold exactly are left to the general implementation.
        assert!(super::to_string(&json!({"x": 1.5})).is_err());
        assert!(super::to_string(&json!(9_007_199_254_740_993_u64)).is_err());
        assert!(super::to_string(&json!(-9_223_372_036_854_775_808_i64)).is_err());
    }

    #[test]
    fn enums_maps_and_repeated_names_are_written_as_serde_json_values() {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        enum E {
            Unit,
            New(u8),
            Tuple(u8, &'static str),
            Struct { b: u8, a: u8 },
        }
        #[derive(serde::Serialize)]
        struct Outer {
            z: Vec<E>,
            #[serde(flatten)]
            rest: std::collections::HashMap<String, u32>,
            keyed: std::collections::BTreeMap<u16, char>,
        }
        let v = Outer {
            z: vec![E::Unit, E::New(1), E::Tuple(2, "t"), E::Struct { b: 3, a: 4 }],
            rest: [("m".to_string(), 1), ("a".to_string(), 2)].into_iter().collect(),
            keyed: [(10, 'x'), (2, 'y')].into_iter().collect(),
        };
        let via_value = reference(&serde_json::to_value(&v).unwrap());
        assert_eq!(super::to_string(&v).unwrap(), via_value);
        // A map key that is no string or integer is refused, not guessed.
        let odd: std::collections::BTreeMap<bool, u8> = [(true, 1)].into_iter().collect();
        assert!(super::to_string(&odd).is_err());
    }
}
