//! Whole-document validation: detect the format, decode, apply the model's rules and the byte-level checks
//! (attachment size and SHA-256), and locate every finding in the input.

use base64::Engine as _;
use sdx_model::rules::{self, limits};
use sdx_model::{Attachment, Body, ErrorCode, Message, Sha256Hex};

use crate::diag::Diagnostic;
use crate::{json, xml};

/// Serial format of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON binding.
    Json,
    /// XML binding.
    Xml,
}

impl Format {
    /// Lowercase name (`json` or `xml`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Xml => "xml",
        }
    }
}

/// Tell JSON from XML by the first significant byte (after an optional UTF-8 BOM and white space).
pub fn detect(input: &[u8]) -> Option<Format> {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    match input.iter().find(|b| !b.is_ascii_whitespace())? {
        b'{' | b'[' => Some(Format::Json),
        b'<' => Some(Format::Xml),
        _ => None,
    }
}

/// Decode in the given format (no rules applied).
pub fn decode(input: &[u8], format: Format) -> Result<Message, Vec<Diagnostic>> {
    match format {
        Format::Json => json::decode(input),
        Format::Xml => xml::decode(input),
    }
}

/// Detect, decode and check a document. `Ok` means valid; `Err` holds every finding (at least one).
pub fn validate(input: &[u8]) -> Result<(Format, Message), Vec<Diagnostic>> {
    let Some(format) = detect(input) else {
        let d = if input.len() > limits::MAX_DOCUMENT_BYTES {
            Diagnostic::new(ErrorCode::TooLarge, format!("document larger than {} bytes", limits::MAX_DOCUMENT_BYTES))
        } else {
            Diagnostic::new(ErrorCode::Malformed, "neither JSON (starts with `{`) nor XML (starts with `<`)")
        };
        return Err(vec![d.at_line(1, 1)]);
    };
    let m = decode(input, format)?;
    let found = check(&m);
    if found.is_empty() { Ok((format, m)) } else { Err(found.into_iter().map(|d| locate(input, format, d)).collect()) }
}

/// The rules of the model plus the attachment checks, on a decoded message (pointers only, no lines).
pub fn check(m: &Message) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> =
        rules::check_message(m).into_iter().map(|i| Diagnostic::new(i.code, i.message).at(i.pointer)).collect();
    let (base, atts): (&str, &[Attachment]) = match &m.body {
        Body::Forward(f) => ("/body/forward/case/attachments", &f.case.attachments),
        Body::Update(u) => ("/body/update/attachments", &u.attachments),
        _ => ("", &[]),
    };
    for (i, a) in atts.iter().enumerate() {
        if let Some(d) = check_attachment(a) {
            out.push(d.at(format!("{base}/{i}/content")));
        }
    }
    out
}

/// The rules that concern a message body alone (pointers relative to the body, e.g. `/update/journal/0/text`):
/// those [`check`] applies to a message carrying it, less the header's rules and the agreement between header
/// and body (the node writes the header). For the local API, which takes bodies and writes the header itself.
pub fn check_body(body: &Body) -> Vec<Diagnostic> {
    check(&carrier(body))
        .into_iter()
        .filter_map(|mut d| {
            let rest = d.pointer.as_deref()?.strip_prefix("/body")?.to_string();
            d.pointer = Some(rest);
            Some(d)
        })
        .collect()
}

/// A message that carries `body` with a header that agrees with it: the message type, the case id and
/// addressees of a forward (from the case), a first sequence number.
fn carrier(body: &Body) -> Message {
    let mut m = sdx_model::sample::typical_forward();
    m.body = body.clone();
    m.header.message_type = body.message_type();
    if let Body::Forward(f) = body {
        m.header.case_id = Some(f.case.case_id);
        m.header.author.key = f.case.originator.clone();
        m.header.reader.key = f.case.assignee.clone();
    }
    m
}

/// Decode and check a message body (`{"update": {…}}`) as [`validate`] does a whole message: the format
/// ([`json::decode_body`]), then [`check_body`]. Findings carry pointers relative to the body; those of the
/// format also line and column (rule findings are not located in the text: a document may have thousands, and
/// locating each costs a pass over the input).
pub fn validate_body(input: &[u8]) -> Result<Body, Invalid> {
    let body = json::decode_body(input).map_err(Invalid::Format)?;
    let found = check_body(&body);
    if found.is_empty() { Ok(body) } else { Err(Invalid::Rules(found)) }
}

/// Decode and check the body of a forward (`{"case": …, "note": …}`) as [`validate`] does a whole message:
/// the format ([`json::decode_forward`]), then the rules of [`check_body`] for it. Pointers relative to it
/// (`/case/priority`).
pub fn validate_forward(input: &[u8]) -> Result<sdx_model::Forward, Invalid> {
    let forward = json::decode_forward(input).map_err(Invalid::Format)?;
    let body = Body::Forward(forward);
    let found: Vec<Diagnostic> = check_body(&body)
        .into_iter()
        .map(|mut d| {
            d.pointer = d.pointer.map(|p| p.strip_prefix("/forward").map(str::to_string).unwrap_or(p));
            d
        })
        .collect();
    match body {
        Body::Forward(f) if found.is_empty() => Ok(f),
        _ => Err(Invalid::Rules(found)),
    }
}

/// Why a part of a message is not valid: its format (it does not decode) or the rules (it decodes, but
/// breaks a rule beyond the schema). Each holds at least one finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// Size, syntax, members, types, identifiers, codes ([`json::decode`] and its kin).
    Format(Vec<Diagnostic>),
    /// The model's rules and the attachment checks ([`check`]).
    Rules(Vec<Diagnostic>),
}

impl Invalid {
    /// The findings.
    pub fn findings(&self) -> &[Diagnostic] {
        match self {
            Invalid::Format(d) | Invalid::Rules(d) => d,
        }
    }
}

fn check_attachment(a: &Attachment) -> Option<Diagnostic> {
    let content = a.content.as_deref()?;
    if content.len() as u64 > limits::MAX_INLINE_ATTACHMENT_BYTES.saturating_mul(4) / 3 + 4 {
        return Some(Diagnostic::new(ErrorCode::TooLarge, "inline attachment too large"));
    }
    let bytes = match base64::engine::general_purpose::STANDARD.decode(content) {
        Ok(b) => b,
        Err(e) => return Some(Diagnostic::new(ErrorCode::AttachmentMismatch, format!("content is not base64: {e}"))),
    };
    if bytes.len() as u64 != a.size {
        return Some(Diagnostic::new(
            ErrorCode::AttachmentMismatch,
            format!("content has {} bytes, size says {}", bytes.len(), a.size),
        ));
    }
    if sha256(&bytes) != a.sha256 {
        return Some(Diagnostic::new(ErrorCode::AttachmentMismatch, "SHA-256 of the content differs from sha256"));
    }
    None
}

/// SHA-256 of bytes as lowercase hex (attachment digests, receipt digests).
pub fn sha256(bytes: &[u8]) -> Sha256Hex {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Sha256Hex::parse(hex).expect("64 lowercase hex digits")
}

/// Add line, column (and XPath for XML) to a diagnostic that has a JSON pointer.
fn locate(input: &[u8], format: Format, mut d: Diagnostic) -> Diagnostic {
    let Some(p) = d.pointer.clone() else { return d };
    match format {
        Format::Json => {
            if let Some((l, c)) = nearest(&p, |q| json::locate(input, q)) {
                d = d.at_line(l, c);
            }
        }
        Format::Xml => {
            if let Ok(text) = std::str::from_utf8(input) {
                let (xpath, pos) = xml::locate(text, &p);
                d.xpath = xpath;
                if let Some((l, c)) = pos {
                    d = d.at_line(l, c);
                }
            }
        }
    }
    d
}

/// Locate the pointer, or the nearest ancestor that exists (a missing member is reported at its parent).
fn nearest(pointer: &str, f: impl Fn(&str) -> Option<(usize, usize)>) -> Option<(usize, usize)> {
    let mut p = pointer;
    loop {
        if let Some(x) = f(p) {
            return Some(x);
        }
        p = &p[..p.rfind('/')?];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_findings_are_located_in_both_formats() {
        let mut m = sdx_model::sample::typical_forward();
        if let Body::Forward(f) = &mut m.body {
            f.case.priority = sdx_model::Priority::Planning;
        }
        for (fmt, doc) in [(Format::Json, json::encode(&m)), (Format::Xml, xml::encode(&m))] {
            let e = validate(doc.as_bytes()).unwrap_err();
            assert_eq!(e[0].code, ErrorCode::PriorityMismatch, "{fmt:?}");
            assert_eq!(e[0].pointer.as_deref(), Some("/body/forward/case/priority"));
            assert!(e[0].line.is_some(), "{fmt:?} {e:?}");
            if fmt == Format::Xml {
                assert_eq!(e[0].xpath.as_deref(), Some("/sdx:support.weiterleitung.0101/vorgang/prioritaet"));
            }
        }
    }

    #[test]
    fn attachment_digest_is_checked() {
        let mut m = sdx_model::sample::typical_forward();
        let content = base64::engine::general_purpose::STANDARD.encode(b"hello");
        let att = Attachment {
            id: sdx_model::ItemId::new_random(),
            file_name: "a.txt".into(),
            media_type: sdx_model::MediaType::parse("text/plain").unwrap(),
            size: 5,
            sha256: sdx_model::Sha256Hex::parse("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
                .unwrap(),
            content: Some(content),
            uri: None,
            added_by: sdx_model::OrgKey::parse(sdx_model::sample::MILA).unwrap(),
            added_at: sdx_model::Timestamp::parse("2026-11-27T09:40:00+01:00").unwrap(),
        };
        if let Body::Forward(f) = &mut m.body {
            f.case.attachments.push(att.clone());
        }
        assert!(check(&m).is_empty(), "{:?}", check(&m));
        if let Body::Forward(f) = &mut m.body {
            f.case.attachments[0].size = 6;
        }
        assert_eq!(check(&m)[0].code, ErrorCode::AttachmentMismatch);
        assert_eq!(detect(b"  {"), Some(Format::Json));
        assert_eq!(detect(b"\xEF\xBB\xBF<x/>"), Some(Format::Xml));
        assert_eq!(validate(b"hello").unwrap_err()[0].code, ErrorCode::Malformed);
    }

    /// A body or a forward alone is refused for what a whole message with it is refused for, with the same code
    /// and the pointer relative to the part.
    #[test]
    fn parts_are_checked_like_whole_messages() {
        let m = sdx_model::sample::typical_forward();
        let whole: serde_json::Value = serde_json::from_str(&json::encode(&m)).unwrap();
        let forward = whole["body"]["forward"].clone();
        let f = validate_forward(forward.to_string().as_bytes()).unwrap();
        assert_eq!(Body::Forward(f), m.body);
        assert_eq!(validate_body(whole["body"].to_string().as_bytes()).unwrap(), m.body);
        // (edit of the forward, code, pointer relative to the forward)
        type Edit = fn(&mut serde_json::Value);
        let cases: [(Edit, ErrorCode, &str); 5] = [
            (|f| f["case"]["priority"] = "low".into(), ErrorCode::PriorityMismatch, "/case/priority"),
            (|f| f["case"]["region"] = "1234".into(), ErrorCode::InvalidIdentifier, "/case/region"),
            (|f| f["case"]["status"] = "open".into(), ErrorCode::UnknownCode, "/case/status"),
            (|f| f["case"]["colour"] = "red".into(), ErrorCode::SchemaViolation, "/case/colour"),
            (
                |f| {
                    let a = f["case"]["category"].take();
                    f["case"]["category"] =
                        serde_json::Value::Array(a.as_object().unwrap().values().cloned().collect());
                },
                ErrorCode::SchemaViolation,
                "/case/category",
            ),
        ];
        for (edit, code, pointer) in cases {
            let mut part = forward.clone();
            edit(&mut part);
            let e = validate_forward(part.to_string().as_bytes()).unwrap_err();
            let d = &e.findings()[0];
            assert_eq!((d.code, d.pointer.as_deref()), (code, Some(pointer)), "{e:?}");
            let mut msg = whole.clone();
            msg["body"]["forward"] = part.clone();
            let full = validate(msg.to_string().as_bytes()).unwrap_err();
            assert_eq!(full[0].code, code, "the same code as a whole message: {full:?}");
            let body = serde_json::json!({ "forward": part });
            let e = validate_body(body.to_string().as_bytes()).unwrap_err();
            assert_eq!(e.findings()[0].pointer.as_deref(), Some(&*format!("/forward{pointer}")));
        }
        let rules = validate_forward(br#"{"case": 1}"#).unwrap_err();
        assert!(matches!(rules, Invalid::Format(_)), "{rules:?}");
        let dup = br#"{"close": {"revision": 1, "revision": 2}}"#;
        assert_eq!(validate_body(dup).unwrap_err().findings()[0].code, ErrorCode::DuplicateKey);
        let deep = format!("{{\"update\": {{\"revision\": 0, \"x\": {}1{}}}}}", "[".repeat(40), "]".repeat(40));
        assert_eq!(validate_body(deep.as_bytes()).unwrap_err().findings()[0].code, ErrorCode::TooDeep);
    }
}
