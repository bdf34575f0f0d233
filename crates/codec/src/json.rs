//! The JSON binding: decode (with limits and located errors), encode, and the RFC 8785 canonical form that
//! gets signed.

use sdx_model::rules::limits;
use sdx_model::{ErrorCode, Message};

use crate::desc::{self, Kind, Occurs, TypeDesc};
use crate::diag::{Diagnostic, coded_message, line_col};

/// Decode a JSON message. Checks size, syntax, duplicate members, unknown members, types, identifiers and
/// codelist membership; the rules beyond that are applied by [`crate::validate`].
pub fn decode(input: &[u8]) -> Result<Message, Vec<Diagnostic>> {
    decode_part(input, Shape::Message, 1)
}

/// Decode a message body alone (one member named by the message type code, e.g. `{"update": {…}}`), as it
/// appears at `/body` of a message. The checks are those of [`decode`] (size, syntax, duplicate and unknown
/// members, an array where the description has an object, nesting as deep as at `/body`, types, identifiers,
/// codes); pointers are relative to the body (`/update/journal/0`).
pub fn decode_body(input: &[u8]) -> Result<sdx_model::Body, Vec<Diagnostic>> {
    decode_part(input, Shape::Body, 2)
}

/// Decode the body of a forward alone (`{"case": …, "note": …}`), as it appears at `/body/forward` of a
/// message; the checks of [`decode`], pointers relative to it (`/case/priority`).
pub fn decode_forward(input: &[u8]) -> Result<sdx_model::Forward, Vec<Diagnostic>> {
    decode_part(input, Shape::Object(&desc::FORWARD), 3)
}

/// Decode a part of a message whose root has `shape` and sits `depth` levels deep in a message (so that the
/// nesting limit is the one the part has inside a whole message).
fn decode_part<T: serde::de::DeserializeOwned>(input: &[u8], shape: Shape, depth: usize) -> Result<T, Vec<Diagnostic>> {
    let input = crate::diag::within_limit(input)?;
    let max_depth = limits::MAX_DEPTH.saturating_sub(depth - 1);
    match serde_json::from_slice::<T>(input) {
        Ok(v) => match array_for_object(input, shape) {
            None => Ok(v),
            Some((offset, pointer)) => {
                let (l, c) = line_col(input, offset);
                Err(vec![
                    Diagnostic::new(ErrorCode::SchemaViolation, "expected an object, found an array")
                        .at(pointer)
                        .at_line(l, c),
                ])
            }
        },
        Err(_) => Err(vec![locate_failure::<T>(input, max_depth)]),
    }
}

/// What the description expects at a position of the document.
#[derive(Clone, Copy)]
enum Shape {
    Message,
    Body,
    Object(&'static TypeDesc),
    Any,
}

/// serde lets a JSON array stand for a structure (members in declaration order); SDX, like its JSON Schema,
/// does not. Finds the first array where the description expects an object, from a root of `shape`: its offset
/// and JSON pointer. Only called on documents that already typed, so the walk sees well-formed JSON.
fn array_for_object(input: &[u8], shape: Shape) -> Option<(usize, String)> {
    let mut s = Scanner { b: input, i: 0 };
    let mut path = Vec::new();
    s.ws();
    walk(&mut s, shape, &mut path)
}

fn walk<'a>(s: &mut Scanner<'a>, shape: Shape, path: &mut Vec<std::borrow::Cow<'a, str>>) -> Option<(usize, String)> {
    if let Shape::Any = shape {
        s.skip_value(0);
        return None;
    }
    match s.peek()? {
        b'[' => return Some((s.i, path.iter().map(|p| format!("/{p}")).collect())),
        b'{' => s.i += 1,
        _ => {
            s.skip_value(0);
            return None;
        }
    }
    loop {
        s.ws();
        match s.peek()? {
            b'}' => {
                s.i += 1;
                return None;
            }
            b',' => {
                s.i += 1;
                continue;
            }
            _ => {}
        }
        let key = s.str_value()?;
        s.ws();
        if s.peek()? != b':' {
            return None;
        }
        s.i += 1;
        s.ws();
        let (inner, list) = match shape {
            Shape::Message => (
                match &*key {
                    "header" => Shape::Object(&desc::HEADER),
                    "body" => Shape::Body,
                    _ => Shape::Any,
                },
                false,
            ),
            Shape::Body => (desc::message_by_code(&key).map_or(Shape::Any, |m| Shape::Object(m.body)), false),
            Shape::Object(t) => match t.by_json(&key) {
                Some(fd) => (
                    match fd.kind {
                        Kind::Object(t2) => Shape::Object(t2),
                        _ => Shape::Any,
                    },
                    matches!(fd.occurs, Occurs::List { .. }),
                ),
                None => (Shape::Any, false),
            },
            Shape::Any => (Shape::Any, false),
        };
        path.push(key);
        let found = if list && s.peek()? == b'[' {
            s.i += 1;
            let mut ix = 0usize;
            loop {
                s.ws();
                match s.peek()? {
                    b']' => {
                        s.i += 1;
                        break None;
                    }
                    b',' => s.i += 1,
                    _ => {
                        path.push(std::borrow::Cow::Owned(ix.to_string()));
                        let f = walk(s, inner, path);
                        path.pop();
                        if f.is_some() {
                            break f;
                        }
                        ix += 1;
                    }
                }
            }
        } else {
            walk(s, inner, path)
        };
        path.pop();
        if found.is_some() {
            return found;
        }
    }
}

/// Why `input` does not decode as a `T`, located; `max_depth` is the nesting the input may have.
fn locate_failure<T: serde::de::DeserializeOwned>(input: &[u8], max_depth: usize) -> Diagnostic {
    if let Some(offset) = too_deep(input, max_depth) {
        let (l, c) = line_col(input, offset);
        return Diagnostic::new(ErrorCode::TooDeep, format!("nesting deeper than {} levels", limits::MAX_DEPTH))
            .at_line(l, c);
    }
    let mut de = serde_json::Deserializer::from_slice(input);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let err = match result {
        Ok(_) => {
            let (msg, line, col) = match de.end() {
                Err(e) => (e.to_string(), e.line(), e.column()),
                Ok(()) => ("document could not be decoded".to_string(), 0, 0),
            };
            let msg = msg.split(" at line ").next().unwrap_or_default().to_string();
            return Diagnostic::new(ErrorCode::Malformed, msg).at_line(line, col);
        }
        Err(e) => e,
    };
    let pointer = pointer_of(err.path());
    let inner = err.inner();
    let raw = inner.to_string();
    let text = match raw.rfind(" at line ") {
        Some(i) => &raw[..i],
        None => raw.as_str(),
    };
    use serde_json::error::Category;
    let (code, message) = match inner.classify() {
        Category::Eof => (ErrorCode::Malformed, format!("truncated: {text}")),
        Category::Io => (ErrorCode::Malformed, text.to_string()),
        Category::Syntax if text.contains("recursion limit") => {
            (ErrorCode::TooDeep, format!("nesting deeper than {} levels", limits::MAX_DEPTH))
        }
        Category::Syntax if text.contains("UTF-8") || text.contains("unicode") => {
            (ErrorCode::Malformed, format!("invalid UTF-8 or escape: {text}"))
        }
        Category::Syntax => (ErrorCode::Malformed, text.to_string()),
        Category::Data => classify_data(text, &pointer),
    };
    let mut d = Diagnostic::new(code, message);
    if inner.line() > 0 {
        d = d.at_line(inner.line(), inner.column());
    }
    if !pointer.is_empty() || matches!(inner.classify(), Category::Data) {
        d = d.at(pointer);
    }
    d
}

fn classify_data(text: &str, pointer: &str) -> (ErrorCode, String) {
    if let Some((code, msg)) = coded_message(text) {
        return (code, msg.to_string());
    }
    if text.starts_with("duplicate field") {
        return (ErrorCode::DuplicateKey, text.to_string());
    }
    if text == "missing field `solution`" && pointer.ends_with("/resolve") {
        return (ErrorCode::SolutionMissing, "a resolve message carries a solution".into());
    }
    (ErrorCode::SchemaViolation, text.to_string())
}

/// Offset of the first bracket that opens more than `max` nested arrays/objects, if any. Only run on the error
/// path: a document that types as a message is at most as deep as the model.
fn too_deep(input: &[u8], max: usize) -> Option<usize> {
    let (mut depth, mut in_str, mut esc) = (0usize, false, false);
    for (i, &b) in input.iter().enumerate() {
        if in_str {
            match b {
                _ if esc => esc = false,
                b'\\' => esc = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Some(i);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Turn a serde path into a JSON pointer.
pub(crate) fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        out.push('/');
        match seg {
            Segment::Seq { index } => out.push_str(&index.to_string()),
            Segment::Map { key } => out.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { variant } => out.push_str(variant),
            Segment::Unknown => out.push('?'),
        }
    }
    out
}

/// Encode as pretty-printed JSON (two-space indent, members in model order), with a final newline.
pub fn encode(m: &Message) -> String {
    let mut s = serde_json::to_string_pretty(m).unwrap_or_default();
    s.push('\n');
    s
}

/// Encode as compact JSON.
pub fn encode_compact(m: &Message) -> String {
    serde_json::to_string(m).unwrap_or_default()
}

/// The canonical form (RFC 8785, JSON Canonicalization Scheme): what gets signed and hashed.
///
/// Written straight from the message (`crate::canonical`): members sorted by their UTF-16 code units, strings
/// with exactly the escapes of RFC 8785 (§ 3.2.2.2), integers as they are. The model has no floating-point
/// numbers; should a value ever hold one, the general implementation (`serde_json_canonicalizer`, which also
/// formats floats per ECMAScript) takes over. A property test checks both give the same bytes.
pub fn canonical(m: &Message) -> String {
    match crate::canonical::to_string(m) {
        Ok(s) => s,
        // Serialization of the model cannot fail: it has no maps with non-string keys.
        Err(_) => serde_json_canonicalizer::to_string(m).unwrap_or_default(),
    }
}

/// Find the 1-based line and column of the value at `pointer` in a JSON text, if it is there.
pub fn locate(input: &[u8], pointer: &str) -> Option<(usize, usize)> {
    let segments: Vec<String> = if pointer.is_empty() {
        Vec::new()
    } else {
        pointer.strip_prefix('/')?.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect()
    };
    let mut s = Scanner { b: input, i: 0 };
    s.ws();
    for seg in &segments {
        match s.peek()? {
            b'{' => {
                s.i += 1;
                loop {
                    s.ws();
                    if s.peek()? == b'}' {
                        return None;
                    }
                    let key = s.string()?;
                    s.ws();
                    if s.peek()? != b':' {
                        return None;
                    }
                    s.i += 1;
                    s.ws();
                    if key == *seg {
                        break;
                    }
                    s.skip_value(0)?;
                    s.ws();
                    if s.peek()? == b',' {
                        s.i += 1;
                    }
                }
            }
            b'[' => {
                let want: usize = seg.parse().ok()?;
                s.i += 1;
                for _ in 0..want {
                    s.ws();
                    s.skip_value(0)?;
                    s.ws();
                    if s.peek()? != b',' {
                        return None;
                    }
                    s.i += 1;
                }
                s.ws();
            }
            _ => return None,
        }
    }
    Some(line_col(input, s.i))
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    /// Skip a string; returns its raw bytes between the quotes and whether it contains escapes.
    fn raw_string(&mut self) -> Option<(&'a [u8], bool)> {
        if self.peek()? != b'"' {
            return None;
        }
        self.i += 1;
        let start = self.i;
        let mut escaped = false;
        loop {
            let rest = self.b.get(self.i..)?;
            let k = memchr::memchr2(b'"', b'\\', rest)?;
            self.i += k;
            if self.b[self.i] == b'\\' {
                escaped = true;
                self.i += 2;
            } else {
                let raw = &self.b[start..self.i];
                self.i += 1;
                return Some((raw, escaped));
            }
        }
    }
    /// A string's value, borrowed when it has no escapes.
    fn str_value(&mut self) -> Option<std::borrow::Cow<'a, str>> {
        let start = self.i;
        let (raw, escaped) = self.raw_string()?;
        if !escaped {
            return std::str::from_utf8(raw).ok().map(std::borrow::Cow::Borrowed);
        }
        serde_json::from_slice::<String>(&self.b[start..self.i]).ok().map(std::borrow::Cow::Owned)
    }
    /// A string's value (keys and pointer segments).
    fn string(&mut self) -> Option<String> {
        let start = self.i;
        let (raw, escaped) = self.raw_string()?;
        if !escaped {
            return std::str::from_utf8(raw).ok().map(str::to_string);
        }
        serde_json::from_slice(&self.b[start..self.i]).ok()
    }
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > limits::MAX_DEPTH * 4 {
            return None;
        }
        match self.peek()? {
            b'"' => {
                self.raw_string()?;
            }
            b'{' | b'[' => {
                let close = if self.peek()? == b'{' { b'}' } else { b']' };
                self.i += 1;
                loop {
                    self.ws();
                    if self.peek()? == close {
                        self.i += 1;
                        return Some(());
                    }
                    if close == b'}' {
                        self.raw_string()?;
                        self.ws();
                        if self.peek()? != b':' {
                            return None;
                        }
                        self.i += 1;
                        self.ws();
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        c if c == close => {}
                        _ => return None,
                    }
                }
            }
            _ => {
                let start = self.i;
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b'}' | b']' | b':' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.i += 1;
                }
                if self.i == start {
                    return None;
                }
            }
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_members_and_indices() {
        let doc = b"{\n  \"a\": 1,\n  \"b\": [10, {\"c\": \"x\"}]\n}";
        assert_eq!(locate(doc, "/a"), Some((2, 8)));
        assert_eq!(locate(doc, "/b/1/c"), Some((3, 19)));
        assert_eq!(locate(doc, "/zz"), None);
        // Malformed input ends the search instead of looping (found by fuzzing).
        for bad in [&b"[}"[..], b"{\"a\": [}, \"b\": 1}", b"[1 2]", b"{\"a\" 1}", b"[:", b"{\"a\":}"] {
            assert_eq!(locate(bad, "/b"), None);
            assert_eq!(locate(bad, "/1"), None);
        }
    }

    #[test]
    fn canonical_matches_the_reference_implementation_on_odd_text() {
        let mut m = sdx_model::sample::typical_forward();
        if let sdx_model::Body::Forward(f) = &mut m.body {
            f.note = Some("q\"b\\ \u{1}\u{8}\u{c}\u{1f}\u{7f} \u{2028} é 𝄞 \u{fffd} </script>".into());
        }
        assert_eq!(canonical(&m), serde_json_canonicalizer::to_string(&m).unwrap());
    }

    #[test]
    fn sample_round_trips_and_canonical_is_stable() {
        let m = sdx_model::sample::typical_forward();
        let j = encode(&m);
        let back = decode(j.as_bytes()).unwrap();
        assert_eq!(back, m);
        assert_eq!(canonical(&back), canonical(&m));
        assert!(canonical(&m).starts_with("{\"body\":"));
    }

    #[test]
    fn errors_are_typed_and_located() {
        let m = sdx_model::sample::typical_forward();
        let j = encode(&m).replace("\"inProgress\"", "\"x\"").replace("\"new\"", "\"open\"");
        let e = decode(j.as_bytes()).unwrap_err();
        assert_eq!(e[0].code, ErrorCode::UnknownCode, "{e:?}");
        assert_eq!(e[0].pointer.as_deref(), Some("/body/forward/case/status"));
        assert!(e[0].line.is_some());
        let e = decode(&j.as_bytes()[..100]).unwrap_err();
        assert_eq!(e[0].code, ErrorCode::Malformed);
        let dup = encode(&m).replacen("\"revision\": 1,", "\"revision\": 1, \"revision\": 2,", 1);
        assert_eq!(decode(dup.as_bytes()).unwrap_err()[0].code, ErrorCode::DuplicateKey);
        let deep = "[".repeat(10_000);
        assert_eq!(decode(deep.as_bytes()).unwrap_err()[0].code, ErrorCode::TooDeep);
        assert_eq!(decode(b"\xff\xfe{}").unwrap_err()[0].code, ErrorCode::Malformed);
        // An array in place of a structure is refused, as the JSON Schema does.
        let v: serde_json::Value = serde_json::from_str(&encode(&m)).unwrap();
        let mut arr = v.clone();
        let author = arr["header"]["author"].take();
        arr["header"]["author"] = serde_json::json!([author["directory"], author["key"]]);
        let e = decode(arr.to_string().as_bytes()).unwrap_err();
        assert_eq!((e[0].code, e[0].pointer.as_deref()), (ErrorCode::SchemaViolation, Some("/header/author")));
        let mut arr = v;
        let entry = arr["body"]["forward"]["case"]["journal"][1].take();
        let fields: Vec<serde_json::Value> =
            ["id", "visibility", "author", "createdAt", "text"].iter().map(|k| entry[k].clone()).collect();
        arr["body"]["forward"]["case"]["journal"][1] = serde_json::Value::Array(fields);
        let e = decode(arr.to_string().as_bytes()).unwrap_err();
        assert_eq!(e[0].pointer.as_deref(), Some("/body/forward/case/journal/1"));
    }
}
