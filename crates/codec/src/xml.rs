//! The XML binding, following XÖV conventions: one root element per message type, a `nachrichtenkopf`
//! header, German element names, codes as `Code` with `listURI`/`listVersionID`, unqualified local elements.
//!
//! Decoding is driven by [`crate::desc`]: the XML is read into the JSON data model (a `serde_json::Value`)
//! and then typed by the same serde code as JSON, so both bindings accept exactly the same messages.
//! Hostile input is refused: any DTD (`<!DOCTYPE`), entity reference other than the five predefined ones
//! and character references, unknown elements or attributes, text where none belongs, and documents beyond
//! the documented size; nothing is ever fetched or expanded.

use std::collections::HashMap;
use std::fmt::Write as _;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use serde_json::{Map, Value};

use sdx_model::codelist::CodeList;
use sdx_model::message::STANDARD;
use sdx_model::{ErrorCode, Message};

use crate::desc::{self, Field, Kind, MessageDesc, Occurs, TypeDesc};
use crate::diag::{Diagnostic, coded_message, line_col};

/// Decode an XML message.
pub fn decode(input: &[u8]) -> Result<Message, Vec<Diagnostic>> {
    let input = crate::diag::within_limit(input)?;
    let text = match std::str::from_utf8(input) {
        Ok(t) => t,
        Err(e) => {
            let (l, c) = line_col(input, e.valid_up_to());
            return Err(vec![Diagnostic::new(ErrorCode::Malformed, "invalid UTF-8").at_line(l, c)]);
        }
    };
    let (_, value) = Parser::new(text, false).document().map_err(|d| vec![d])?;
    // Fast path: type the value by moving its strings. On failure, read the document once more and type it
    // with path tracking to learn where.
    match serde_json::from_value::<Message>(value) {
        Ok(m) => Ok(m),
        Err(_) => {
            let (_, value) = Parser::new(text, false).document().map_err(|d| vec![d])?;
            Err(vec![locate_pointer_diag(text, type_error(value))])
        }
    }
}

/// Type the JSON-model value with path tracking and turn the failure into a diagnostic with a JSON pointer.
fn type_error(value: Value) -> Diagnostic {
    let err = match serde_path_to_error::deserialize::<_, Message>(value) {
        Ok(_) => return Diagnostic::new(ErrorCode::SchemaViolation, "document could not be typed"),
        Err(e) => e,
    };
    let pointer = crate::json::pointer_of(err.path());
    let raw = err.inner().to_string();
    let (code, msg) = match coded_message(&raw) {
        Some((c, m)) => (c, m.to_string()),
        None if raw.starts_with("missing field `solution`") => {
            (ErrorCode::SolutionMissing, "a resolve message carries a solution".to_string())
        }
        None => (ErrorCode::SchemaViolation, raw),
    };
    Diagnostic::new(code, msg).at(pointer)
}

/// Add XPath, line and column to a diagnostic that has a JSON pointer, by reading the document once more.
fn locate_pointer_diag(text: &str, mut d: Diagnostic) -> Diagnostic {
    if let Some(p) = &d.pointer {
        let (xpath, pos) = locate(text, p);
        d.xpath = xpath;
        if let Some((l, c)) = pos {
            d = d.at_line(l, c);
        }
    }
    d
}

/// Find the XPath and the 1-based line/column of the element that a JSON pointer designates.
pub fn locate(text: &str, pointer: &str) -> (Option<String>, Option<(usize, usize)>) {
    let mut p = Parser::new(text, true);
    if p.document().is_err() && p.positions.is_empty() {
        return (None, None);
    }
    let Some(xpath) = xpath_of(&p, pointer) else { return (None, None) };
    // The pointer may name a member deeper than any element (e.g. a missing one): walk up to the nearest.
    let mut probe = xpath.as_str();
    loop {
        if let Some(off) = p.positions.get(probe) {
            return (Some(xpath.clone()), Some(line_col(text.as_bytes(), *off)));
        }
        match probe.rfind('/') {
            Some(i) if i > 0 => probe = &probe[..i],
            _ => return (Some(xpath.clone()), None),
        }
    }
}

/// Translate a JSON pointer into an XPath of this document's XML form.
fn xpath_of(p: &Parser<'_>, pointer: &str) -> Option<String> {
    let root = p.root?;
    let mut out = format!("/sdx:{}", root.root);
    let mut segs = pointer.split('/').skip(1).peekable();
    let mut ty: &TypeDesc = match segs.next() {
        Some("header") => {
            match segs.peek() {
                Some(name) => {
                    if let Some(fd) = desc::HEADER.by_json(name)
                        && desc::is_root_attribute(fd)
                    {
                        return Some(format!("{out}/{}", fd.xml));
                    }
                }
                None => return Some(format!("{out}/{}", desc::XML_HEADER)),
            }
            out.push('/');
            out.push_str(desc::XML_HEADER);
            &desc::HEADER
        }
        Some("body") => {
            segs.next(); // the message type key: the root element itself
            root.body
        }
        _ => return Some(out),
    };
    while let Some(seg) = segs.next() {
        let fd = ty.by_json(seg)?;
        let _ = write!(out, "/{}", fd.xml);
        if matches!(fd.occurs, Occurs::List { .. })
            && let Some(ix) = segs.peek().and_then(|s| s.parse::<usize>().ok())
        {
            segs.next();
            let _ = write!(out, "[{}]", ix + 1);
        }
        match fd.kind {
            Kind::Object(t) => ty = t,
            _ => break,
        }
    }
    Some(out)
}

struct Parser<'a> {
    r: Reader<&'a [u8]>,
    text: &'a str,
    /// Element XPath stack (static names, list index).
    path: Vec<(&'static str, Option<usize>)>,
    root: Option<&'static MessageDesc>,
    /// XPath → byte offset of the element start; filled only when locating.
    record: bool,
    positions: HashMap<String, usize>,
}

type PResult<T> = Result<T, Diagnostic>;

impl<'a> Parser<'a> {
    fn new(text: &'a str, record: bool) -> Self {
        let mut r = Reader::from_str(text);
        let cfg = r.config_mut();
        cfg.expand_empty_elements = true;
        cfg.check_end_names = true;
        cfg.trim_text(false);
        Parser { r, text, path: Vec::new(), root: None, record, positions: HashMap::new() }
    }

    fn offset(&self) -> usize {
        usize::try_from(self.r.buffer_position()).unwrap_or(usize::MAX)
    }

    fn xpath(&self) -> String {
        let mut s = String::new();
        for (i, (name, ix)) in self.path.iter().enumerate() {
            s.push('/');
            if i == 0 {
                s.push_str("sdx:");
            }
            s.push_str(name);
            if let Some(ix) = ix {
                let _ = write!(s, "[{}]", ix + 1);
            }
        }
        s
    }

    fn err(&self, code: ErrorCode, msg: impl Into<String>) -> Diagnostic {
        let (l, c) = line_col(self.text.as_bytes(), self.offset());
        let mut d = Diagnostic::new(code, msg).at_line(l, c);
        if !self.path.is_empty() {
            d.xpath = Some(self.xpath());
        }
        d
    }

    fn xml_error(&self, e: quick_xml::Error) -> Diagnostic {
        let pos = usize::try_from(self.r.error_position()).unwrap_or(0);
        let (l, c) = line_col(self.text.as_bytes(), pos);
        let mut d = Diagnostic::new(ErrorCode::Malformed, format!("not well-formed XML: {e}")).at_line(l, c);
        if !self.path.is_empty() {
            d.xpath = Some(self.xpath());
        }
        d
    }

    /// The next event, and whether it is an unprefixed (unqualified) element. Namespaces are checked by hand:
    /// only the root is qualified, and no element may declare a default namespace (see `declares_default_ns`).
    fn next(&mut self) -> PResult<(bool, Event<'a>)> {
        match self.r.read_event() {
            Ok(ev) => {
                let unqualified = match &ev {
                    Event::Start(e) => e.name().prefix().is_none(),
                    _ => true,
                };
                Ok((unqualified, ev))
            }
            Err(e) => Err(self.xml_error(e)),
        }
    }

    fn forbidden(&self, what: &str) -> Diagnostic {
        self.err(
            ErrorCode::ForbiddenXml,
            format!("{what} is not allowed in SDX documents (no DTDs, no entity declarations or references)"),
        )
    }

    /// The whole document: prolog, root element, epilog.
    fn document(&mut self) -> PResult<(&'static MessageDesc, Value)> {
        let root_start = loop {
            let off = self.offset();
            match self.r.read_event().map(|ev| ((), ev)) {
                Err(e) => return Err(self.xml_error(e)),
                Ok(((), Event::Start(e))) => {
                    let name = e.name();
                    let prefix = name.prefix().map(|p| p.into_inner());
                    let decl = match prefix {
                        Some(p) => format!("xmlns:{p}"),
                        None => "xmlns".to_string(),
                    };
                    let declared =
                        e.attributes().flatten().find(|a| a.key.0 == decl).and_then(|a| self.attr_value(&a).ok());
                    let ns_ok = declared.as_deref() == Some(desc::XML_NAMESPACE);
                    let local = e.local_name();
                    let local = local.as_ref();
                    let md = desc::message_by_root(local.as_bytes());
                    if ns_ok && md.is_some() && prefix.is_none() {
                        return Err(self.err(
                            ErrorCode::SchemaViolation,
                            "declare the SDX namespace with a prefix (xmlns:sdx): local elements are unqualified",
                        ));
                    }
                    match (ns_ok, md) {
                        (true, Some(md)) => {
                            self.root = Some(md);
                            self.path.push((md.root, None));
                            if self.record {
                                self.positions.insert(self.xpath(), off);
                            }
                            break e;
                        }
                        _ => {
                            return Err(self.err(
                                ErrorCode::WrongRoot,
                                format!(
                                    "root element <{}> is not an SDX message (expected e.g. <sdx:support.weiterleitung.0101> in namespace {})",
                                    clip(e.name().0),
                                    desc::XML_NAMESPACE
                                ),
                            ));
                        }
                    }
                }
                Ok(((), Event::Decl(d))) => {
                    if let Some(Ok(enc)) = d.encoding()
                        && !enc.eq_ignore_ascii_case("utf-8")
                    {
                        return Err(self.err(ErrorCode::Malformed, "only UTF-8 encoded documents are accepted"));
                    }
                }
                Ok(((), Event::DocType(_))) => return Err(self.forbidden("a document type declaration (DTD)")),
                Ok(((), Event::Comment(_) | Event::PI(_))) => {}
                Ok(((), Event::Text(t))) if is_space(&t) => {}
                Ok(((), Event::Eof)) => return Err(self.err(ErrorCode::Malformed, "empty document or no root element")),
                Ok(((), Event::GeneralRef(_))) => return Err(self.forbidden("an entity reference")),
                Ok(_) => return Err(self.err(ErrorCode::Malformed, "content before the root element")),
            }
        };
        let md = self.root.expect("set above");
        let mut header = Map::new();
        self.root_attributes(&root_start, &mut header)?;
        // The header element comes first, then the body's fields up to the root's end tag.
        let off = loop {
            let off = self.offset();
            let (unqualified, ev) = self.next()?;
            match ev {
                Event::Start(e) if e.local_name().as_ref() == desc::XML_HEADER => {
                    self.check_unqualified(unqualified, &e)?;
                    self.no_attributes(&e)?;
                    break off;
                }
                Event::Start(_) => {
                    return Err(self.err(ErrorCode::SchemaViolation, "the first element must be <nachrichtenkopf>"));
                }
                Event::End(_) => return Err(self.err(ErrorCode::SchemaViolation, "missing <nachrichtenkopf>")),
                other => self.between_elements(other)?,
            }
        };
        self.path.push((desc::XML_HEADER, None));
        if self.record {
            self.positions.insert(self.xpath(), off);
        }
        self.object_fields(&desc::HEADER, &mut header)?;
        self.path.pop();
        let mut body = Map::new();
        self.object_fields(md.body, &mut body)?;
        self.path.pop();
        // Epilog: only comments, PIs and white space.
        loop {
            match self.r.read_event() {
                Err(e) => return Err(self.xml_error(e)),
                Ok(Event::Eof) => break,
                Ok(Event::Comment(_) | Event::PI(_)) => {}
                Ok(Event::Text(t)) if is_space(&t) => {}
                Ok(Event::DocType(_)) => return Err(self.forbidden("a document type declaration (DTD)")),
                Ok(_) => return Err(self.err(ErrorCode::Malformed, "content after the root element")),
            }
        }
        let mut body_obj = Map::new();
        body_obj.insert(md.code.to_string(), Value::Object(body));
        let mut doc = Map::new();
        doc.insert("header".into(), Value::Object(header));
        doc.insert("body".into(), Value::Object(body_obj));
        Ok((md, Value::Object(doc)))
    }

    fn root_attributes(&self, e: &BytesStart<'_>, header: &mut Map<String, Value>) -> PResult<()> {
        let mut standard = false;
        for a in e.attributes() {
            let a = a.map_err(|e| self.err(ErrorCode::Malformed, format!("bad attribute: {e}")))?;
            let key = a.key.0;
            if key == "xmlns" || key.starts_with("xmlns:") {
                continue;
            }
            let value = self.attr_value(&a)?;
            let (json, v) = match key {
                "standard" => {
                    if value != STANDARD {
                        return Err(self.err(
                            ErrorCode::UnsupportedVersion,
                            format!("standard `{}` is not {STANDARD}", clip(&value)),
                        ));
                    }
                    standard = true;
                    continue;
                }
                "version" => ("schemaVersion", Value::String(value)),
                "produkt" => ("product", Value::String(value)),
                "produkthersteller" => ("productVendor", Value::String(value)),
                "produktversion" => ("productVersion", Value::String(value)),
                "test" => match value.trim() {
                    "true" | "1" => ("test", Value::Bool(true)),
                    "false" | "0" => ("test", Value::Bool(false)),
                    _ => return Err(self.err(ErrorCode::SchemaViolation, "attribute test must be true or false")),
                },
                other => {
                    return Err(self
                        .err(ErrorCode::SchemaViolation, format!("unknown attribute `{}` on the root", clip(other))));
                }
            };
            if header.insert(json.into(), v).is_some() {
                return Err(self.err(ErrorCode::DuplicateKey, format!("attribute `{key}` twice")));
            }
        }
        if !standard {
            return Err(self.err(ErrorCode::SchemaViolation, "the root element needs the attribute standard"));
        }
        if !header.contains_key("schemaVersion") {
            return Err(self.err(ErrorCode::SchemaViolation, "the root element needs the attribute version"));
        }
        Ok(())
    }

    fn attr_value(&self, a: &quick_xml::events::attributes::Attribute<'_>) -> PResult<String> {
        a.normalized_value(quick_xml::XmlVersion::Explicit1_0).map(|v| v.into_owned()).map_err(|e| match e {
            quick_xml::Error::Escape(_) => self.forbidden("an entity reference in an attribute"),
            other => self.err(ErrorCode::Malformed, format!("bad attribute value: {other}")),
        })
    }

    fn check_unqualified(&self, unbound: bool, e: &BytesStart<'_>) -> PResult<()> {
        if unbound {
            Ok(())
        } else {
            Err(self.err(
                ErrorCode::SchemaViolation,
                format!("element <{}> must be in no namespace (local elements are unqualified)", clip(e.name().0)),
            ))
        }
    }

    fn no_attributes(&self, e: &BytesStart<'_>) -> PResult<()> {
        for a in e.attributes() {
            let a = a.map_err(|e| self.err(ErrorCode::Malformed, format!("bad attribute: {e}")))?;
            if a.key.0 == "xmlns" && !a.value.is_empty() {
                return Err(self.err(
                    ErrorCode::SchemaViolation,
                    format!("<{}> declares a default namespace: SDX local elements are unqualified", clip(e.name().0)),
                ));
            }
            if !(a.key.0 == "xmlns" || a.key.0.starts_with("xmlns:")) {
                return Err(self.err(
                    ErrorCode::SchemaViolation,
                    format!("unexpected attribute `{}` on <{}>", clip(a.key.0), clip(e.name().0)),
                ));
            }
        }
        Ok(())
    }

    /// White space, comments and PIs are allowed between elements; anything else is not.
    fn between_elements(&self, ev: Event<'_>) -> PResult<()> {
        match ev {
            Event::Text(t) if is_space(&t) => Ok(()),
            Event::Comment(_) | Event::PI(_) => Ok(()),
            Event::Text(_) | Event::CData(_) => Err(self.err(ErrorCode::SchemaViolation, "text is not allowed here")),
            Event::GeneralRef(_) => Err(self.forbidden("an entity reference")),
            Event::DocType(_) => Err(self.forbidden("a document type declaration (DTD)")),
            Event::Eof => Err(self.err(ErrorCode::Malformed, "truncated: the document ends inside an element")),
            _ => Err(self.err(ErrorCode::Malformed, "unexpected markup")),
        }
    }

    /// Read the children of an object element up to its end tag.
    fn object_fields(&mut self, ty: &'static TypeDesc, out: &mut Map<String, Value>) -> PResult<()> {
        let mut last: Option<usize> = None;
        loop {
            let off = self.offset();
            let (unbound, ev) = self.next()?;
            match ev {
                Event::Start(e) => {
                    self.check_unqualified(unbound, &e)?;
                    self.field(ty, &e, off, out, &mut last)?;
                }
                Event::End(_) => break,
                other => self.between_elements(other)?,
            }
        }
        self.required(ty, out)
    }

    fn field(
        &mut self,
        ty: &'static TypeDesc,
        e: &BytesStart<'_>,
        off: usize,
        out: &mut Map<String, Value>,
        last: &mut Option<usize>,
    ) -> PResult<()> {
        let local = e.local_name();
        let name = local.as_ref();
        let Some(ix) = ty
            .index_by_xml_from(name.as_bytes(), last.unwrap_or(0))
            .filter(|i| !desc::is_root_attribute(&ty.fields[*i]))
        else {
            return Err(
                self.err(ErrorCode::SchemaViolation, format!("unknown element <{}> in {}", clip(name), ty.xml_name))
            );
        };
        let fd: &'static Field = &ty.fields[ix];
        let is_list = matches!(fd.occurs, Occurs::List { .. });
        if let Some(l) = *last {
            if ix < l {
                return Err(self.err(
                    ErrorCode::SchemaViolation,
                    format!("element <{}> is out of order in {}", fd.xml, ty.xml_name),
                ));
            }
            if ix == l && !is_list {
                return Err(self.err(ErrorCode::DuplicateKey, format!("element <{}> appears twice", fd.xml)));
            }
        }
        *last = Some(ix);
        let list_ix = if let Occurs::List { max, .. } = fd.occurs {
            let n = out.get(fd.json).and_then(Value::as_array).map_or(0, Vec::len);
            if n >= max {
                return Err(self.err(ErrorCode::TooLarge, format!("more than {max} <{}> elements", fd.xml)));
            }
            Some(n)
        } else {
            None
        };
        self.path.push((fd.xml, list_ix));
        if self.record {
            self.positions.insert(self.xpath(), off);
        }
        let v = self.value(fd, e)?;
        self.path.pop();
        if is_list {
            match out.entry(fd.json).or_insert_with(|| Value::Array(Vec::new())) {
                Value::Array(a) => a.push(v),
                _ => unreachable!("lists are arrays"),
            }
        } else {
            out.insert(fd.json.to_string(), v);
        }
        Ok(())
    }

    fn required(&self, ty: &TypeDesc, out: &Map<String, Value>) -> PResult<()> {
        for fd in ty.fields {
            if desc::is_root_attribute(fd) {
                continue;
            }
            let missing = match fd.occurs {
                Occurs::Required => !out.contains_key(fd.json),
                Occurs::List { min1: true, .. } => !out.contains_key(fd.json),
                _ => false,
            };
            if missing {
                return Err(
                    self.err(ErrorCode::SchemaViolation, format!("missing element <{}> in {}", fd.xml, ty.xml_name))
                );
            }
        }
        Ok(())
    }

    fn value(&mut self, fd: &'static Field, e: &BytesStart<'_>) -> PResult<Value> {
        match fd.kind {
            Kind::Object(t) => {
                self.no_attributes(e)?;
                let mut m = Map::new();
                self.object_fields(t, &mut m)?;
                Ok(Value::Object(m))
            }
            Kind::Code(list) => self.code(list, e).map(Value::String),
            Kind::Text { .. } | Kind::Ident(_) => {
                self.no_attributes(e)?;
                self.text().map(Value::String)
            }
            Kind::Timestamp => {
                // xs:dateTime collapses white space, so the decoder does too.
                self.no_attributes(e)?;
                let t = self.text()?;
                Ok(Value::String(t.trim_matches(is_space_char).to_string()))
            }
            Kind::UInt { max } => {
                self.no_attributes(e)?;
                let t = self.text()?;
                match t.trim().parse::<u64>() {
                    Ok(n) if n <= max => Ok(Value::from(n)),
                    Ok(_) => Err(self.err(ErrorCode::TooLarge, format!("<{}> exceeds {max}", fd.xml))),
                    Err(_) => Err(self.err(ErrorCode::SchemaViolation, format!("<{}> must be a whole number", fd.xml))),
                }
            }
            Kind::Bool => {
                self.no_attributes(e)?;
                match self.text()?.trim() {
                    "true" | "1" => Ok(Value::Bool(true)),
                    "false" | "0" => Ok(Value::Bool(false)),
                    _ => Err(self.err(ErrorCode::SchemaViolation, format!("<{}> must be true or false", fd.xml))),
                }
            }
        }
    }

    /// An XÖV `Code`: attributes listURI and listVersionID, child `code`, optional child `name`.
    fn code(&mut self, list: &'static CodeList, e: &BytesStart<'_>) -> PResult<String> {
        let (mut uri, mut version) = (None, None);
        for a in e.attributes() {
            let a = a.map_err(|e| self.err(ErrorCode::Malformed, format!("bad attribute: {e}")))?;
            match a.key.0 {
                "listURI" => uri = Some(self.attr_value(&a)?),
                "listVersionID" => version = Some(self.attr_value(&a)?),
                "xmlns" if !a.value.is_empty() => {
                    return Err(self.err(ErrorCode::SchemaViolation, "a code element declares a default namespace"));
                }
                k if k == "xmlns" || k.starts_with("xmlns:") => {}
                k => {
                    return Err(
                        self.err(ErrorCode::SchemaViolation, format!("unexpected attribute `{}` on a code", clip(k)))
                    );
                }
            }
        }
        match uri.as_deref() {
            Some(u) if u == list.urn => {}
            Some(u) => {
                return Err(self.err(
                    ErrorCode::UnknownCode,
                    format!("listURI `{}` is not the list {} ({})", clip(u), list.id, list.urn),
                ));
            }
            None => return Err(self.err(ErrorCode::SchemaViolation, "a code needs the attribute listURI")),
        }
        match version.as_deref() {
            Some(v) if v == list.version => {}
            Some(v) => {
                return Err(self.err(
                    ErrorCode::UnsupportedVersion,
                    format!(
                        "listVersionID `{}` of {} is not supported (this build speaks {})",
                        clip(v),
                        list.id,
                        list.version
                    ),
                ));
            }
            None => return Err(self.err(ErrorCode::SchemaViolation, "a code needs the attribute listVersionID")),
        }
        let mut code: Option<String> = None;
        let mut seen_name = false;
        loop {
            let (unbound, ev) = self.next()?;
            match ev {
                Event::Start(c) => {
                    self.check_unqualified(unbound, &c)?;
                    self.no_attributes(&c)?;
                    let local = c.local_name();
                    match local.as_ref() {
                        // xs:token: leading and trailing white space is not part of the code.
                        "code" if code.is_none() && !seen_name => {
                            code = Some(self.text()?.trim_matches(is_space_char).to_string())
                        }
                        "name" if code.is_some() && !seen_name => {
                            seen_name = true;
                            self.text()?;
                        }
                        other => {
                            return Err(self.err(
                                ErrorCode::SchemaViolation,
                                format!(
                                    "unexpected <{}> in a code (expected <code> then optional <name>)",
                                    clip(other)
                                ),
                            ));
                        }
                    }
                }
                Event::End(_) => break,
                other => self.between_elements(other)?,
            }
        }
        code.ok_or_else(|| self.err(ErrorCode::SchemaViolation, "a code needs a <code> element"))
    }

    /// Text content of a leaf element up to its end tag (CDATA and character references allowed).
    fn text(&mut self) -> PResult<String> {
        let mut s = String::new();
        loop {
            let (_, ev) = self.next()?;
            match ev {
                Event::Text(t) if s.is_empty() => s = t.xml10_content().into_owned(),
                Event::Text(t) => s.push_str(&t.xml10_content()),
                Event::CData(t) => s.push_str(&t.xml10_content()),
                Event::GeneralRef(r) => {
                    let name: &str = &r;
                    let c = match name {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        _ => match r.resolve_char_ref() {
                            Ok(Some(c)) => c,
                            Ok(None) => return Err(self.forbidden(&format!("the entity reference &{};", clip(name)))),
                            Err(_) => {
                                return Err(
                                    self.err(ErrorCode::Malformed, format!("bad character reference &{};", clip(name)))
                                );
                            }
                        },
                    };
                    s.push(c);
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::End(_) => break,
                Event::Start(e) => {
                    return Err(self.err(
                        ErrorCode::SchemaViolation,
                        format!("element <{}> is not allowed inside a text value", clip(e.name().0)),
                    ));
                }
                Event::DocType(_) => return Err(self.forbidden("a document type declaration (DTD)")),
                Event::Eof => {
                    return Err(self.err(ErrorCode::Malformed, "truncated: the document ends inside an element"));
                }
                _ => return Err(self.err(ErrorCode::Malformed, "unexpected markup in a text value")),
            }
        }
        Ok(s)
    }
}

/// XML white space (`S` production): what `xs:token` and `xs:dateTime` collapse.
fn is_space_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Whether a text is XML white space only.
fn is_space(t: &str) -> bool {
    t.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

fn clip(s: &str) -> String {
    let mut t: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        t.push('…');
    }
    t
}

/// Encode a message as XML (UTF-8, two-space indent, final newline).
pub fn encode(m: &Message) -> String {
    let v = serde_json::to_value(m).unwrap_or(Value::Null);
    let header = v.get("header").and_then(Value::as_object);
    let body = v.get("body").and_then(Value::as_object).and_then(|b| b.iter().next());
    let (Some(header), Some((code, body))) = (header, body) else {
        return String::new();
    };
    let Some(md) = desc::message_by_code(code) else { return String::new() };
    let mut out = String::with_capacity(4096);
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = write!(out, "<sdx:{} xmlns:sdx=\"{}\" standard=\"{}\"", md.root, desc::XML_NAMESPACE, STANDARD);
    for (json, attr) in [
        ("schemaVersion", "version"),
        ("product", "produkt"),
        ("productVendor", "produkthersteller"),
        ("productVersion", "produktversion"),
    ] {
        if let Some(s) = header.get(json).and_then(Value::as_str) {
            let _ = write!(out, " {attr}=\"{}\"", escape(s, true));
        }
    }
    let test = header.get("test").and_then(Value::as_bool).unwrap_or(false);
    let _ = writeln!(out, " test=\"{test}\">");
    let _ = writeln!(out, "  <{}>", desc::XML_HEADER);
    write_fields(&mut out, &desc::HEADER, header, 2);
    let _ = writeln!(out, "  </{}>", desc::XML_HEADER);
    if let Some(b) = body.as_object() {
        write_fields(&mut out, md.body, b, 1);
    }
    let _ = writeln!(out, "</sdx:{}>", md.root);
    out
}

fn write_fields(out: &mut String, ty: &TypeDesc, obj: &Map<String, Value>, depth: usize) {
    for fd in ty.fields {
        if desc::is_root_attribute(fd) {
            continue;
        }
        match obj.get(fd.json) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) if matches!(fd.occurs, Occurs::List { .. }) => {
                for item in items {
                    write_one(out, fd, item, depth);
                }
            }
            Some(v) => write_one(out, fd, v, depth),
        }
    }
}

fn write_one(out: &mut String, fd: &Field, v: &Value, depth: usize) {
    let indent = "  ".repeat(depth);
    match (fd.kind, v) {
        (Kind::Object(t), Value::Object(m)) => {
            let _ = writeln!(out, "{indent}<{}>", fd.xml);
            write_fields(out, t, m, depth + 1);
            let _ = writeln!(out, "{indent}</{}>", fd.xml);
        }
        (Kind::Code(list), Value::String(s)) => {
            let _ = writeln!(
                out,
                "{indent}<{0} listURI=\"{1}\" listVersionID=\"{2}\"><code>{3}</code></{0}>",
                fd.xml,
                list.urn,
                list.version,
                escape(s, false)
            );
        }
        (_, Value::String(s)) => {
            let _ = writeln!(out, "{indent}<{0}>{1}</{0}>", fd.xml, escape(s, false));
        }
        (_, Value::Number(n)) => {
            let _ = writeln!(out, "{indent}<{0}>{1}</{0}>", fd.xml, n);
        }
        (_, Value::Bool(b)) => {
            let _ = writeln!(out, "{indent}<{0}>{1}</{0}>", fd.xml, b);
        }
        _ => {}
    }
}

/// Escape text for element content or attribute values. CR is written as `&#13;` and, in attributes, TAB
/// and LF as character references, so that XML end-of-line and attribute normalisation keep them.
fn escape(s: &str, attribute: bool) -> std::borrow::Cow<'_, str> {
    let needs = |c: char| matches!(c, '<' | '>' | '&' | '\r') || (attribute && matches!(c, '"' | '\n' | '\t'));
    if !s.chars().any(needs) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '\r' => o.push_str("&#13;"),
            '"' if attribute => o.push_str("&quot;"),
            '\n' if attribute => o.push_str("&#10;"),
            '\t' if attribute => o.push_str("&#9;"),
            c => o.push(c),
        }
    }
    std::borrow::Cow::Owned(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_round_trips() {
        let m = sdx_model::sample::typical_forward();
        let x = encode(&m);
        let back = decode(x.as_bytes()).unwrap_or_else(|e| panic!("{e:?}\n{x}"));
        assert_eq!(back, m);
        assert_eq!(encode(&back), x);
    }

    #[test]
    fn hostile_and_wrong_input_is_refused() {
        let m = sdx_model::sample::typical_forward();
        let x = encode(&m);
        let code = |s: &str| decode(s.as_bytes()).unwrap_err()[0].code;
        let with_dtd = x.replacen("<sdx:", "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>\n<sdx:", 1);
        assert_eq!(code(&with_dtd), ErrorCode::ForbiddenXml);
        let with_ref = x.replacen("<betreff>", "<betreff>&e;", 1);
        assert_eq!(code(&with_ref), ErrorCode::ForbiddenXml);
        assert_eq!(code("<foo/>"), ErrorCode::WrongRoot);
        assert_eq!(code(&x[..x.len() / 2]), ErrorCode::Malformed);
        let unknown = x.replacen("<betreff>", "<geheim>1</geheim><betreff>", 1);
        assert_eq!(code(&unknown), ErrorCode::SchemaViolation);
        let bad_code = x.replacen("<code>new</code>", "<code>offen</code>", 1);
        let d = &decode(bad_code.as_bytes()).unwrap_err()[0];
        assert_eq!(d.code, ErrorCode::UnknownCode);
        assert!(d.xpath.as_deref().unwrap_or("").ends_with("/vorgang/status"), "{d:?}");
        assert!(d.line.is_some());
        let bad_leika = x.replacen("<leistungsschluessel>99", "<leistungsschluessel>12", 1);
        assert_eq!(code(&bad_leika), ErrorCode::InvalidIdentifier);
    }

    #[test]
    fn special_characters_survive() {
        let mut m = sdx_model::sample::typical_forward();
        if let sdx_model::Body::Forward(f) = &mut m.body {
            f.case.description = "a < b && c > d\r\n\ttab \"quoted\" 'single' ]]> ü€𝄞  ".into();
        }
        let x = encode(&m);
        assert_eq!(decode(x.as_bytes()).unwrap(), m);
    }
}
