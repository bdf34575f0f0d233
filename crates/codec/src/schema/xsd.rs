//! XML Schema 1.0 of SDX messages in XML, following XÖV conventions.
//!
//! - target namespace [`desc::XML_NAMESPACE`]; only the root elements are qualified
//!   (`elementFormDefault="unqualified"`);
//! - one global root element per message type ([`desc::MESSAGES`]), typed by the body's complex type, which
//!   extends the abstract type `Nachricht` (the header element [`desc::XML_HEADER`] and the root attributes
//!   `standard`, `version`, `produkt`, `produkthersteller`, `produktversion`, `test`) by the body's fields;
//! - one named complex type per [`TypeDesc`] (`xml_name`), fields as local elements in an `xs:sequence` in
//!   description order; lists are repeated elements without a wrapper;
//! - codes as XÖV `Code` types (`Code.<Id>`: element `code`, optional `name`, fixed `listURI` and
//!   `listVersionID`); identifiers, texts, numbers and timestamps as named simple types.

use std::fmt::Write as _;

use sdx_model::codelist::CodeList;
use sdx_model::message::{SCHEMA_VERSION, STANDARD};

use super::{
    TIMESTAMP_TYPE, all_fields, code_type_name, codelist_doc, field_doc, fixed_value, ident_doc, is_body,
    used_codelists, used_idents, xml_escape as esc,
};
use crate::desc::{self, Field, Kind, Occurs, TypeDesc};

/// Documentation note on fields with personal data.
const PERSONAL_NOTE: &str =
    "Personenbezogene Daten: nur soweit erforderlich übermitteln, nicht protokollieren (personal data).";

/// Name of the abstract base type of every message (header and root attributes).
const MESSAGE_BASE: &str = "Nachricht";

/// The XSD of every SDX message in XML (one file, no imports).
pub fn xsd() -> String {
    let mut w = Writer::default();
    w.line(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    w.line("<!-- Generated from the SDX format description (sdx-codec, desc.rs). Do not edit. -->");
    w.open(&format!(
        r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:sdx="{ns}" targetNamespace="{ns}" elementFormDefault="unqualified" attributeFormDefault="unqualified" version="{v}">"#,
        ns = esc(desc::XML_NAMESPACE),
        v = esc(SCHEMA_VERSION),
    ));
    w.doc(&format!(
        "SDX: Austausch von Support-Tickets zwischen Ticketsystemen der öffentlichen Verwaltung (exchange of support tickets between ticket systems of the public administration). Schema version {SCHEMA_VERSION}, standard {STANDARD}. Only the root elements are in the target namespace; local elements are unqualified (XÖV style)."
    ));

    w.comment("Messages: one root element per message type");
    for m in desc::MESSAGES {
        w.open(&format!(r#"<xs:element name="{}" type="sdx:{}">"#, esc(m.root), esc(m.body.xml_name)));
        w.doc(&format!("Message type {}: {}", m.code, m.body.doc));
        w.close("xs:element");
    }

    w.comment("Base of every message: header and root attributes");
    message_base(&mut w);

    w.comment("Structured types");
    for t in desc::ALL_TYPES {
        complex_type(&mut w, t);
    }

    w.comment("Codes (XÖV Code type; the lists are published as Genericode)");
    for list in used_codelists() {
        code_type(&mut w, list);
    }

    w.comment("Identifiers, texts, numbers and timestamps");
    for i in used_idents() {
        simple_type(&mut w, i.type_name(), ident_doc(i), "xs:string", &[("pattern", i.pattern())]);
    }
    simple_type(
        &mut w,
        TIMESTAMP_TYPE,
        "Zeitpunkt mit expliziter Zeitzonenangabe (Z oder +hh:mm / -hh:mm), RFC 3339.",
        "xs:dateTime",
        &[("pattern", r".+T.+(Z|[+\-][0-9]{2}:[0-9]{2})")],
    );
    let mut seen: Vec<String> = Vec::new();
    for fd in all_fields().filter(|fd| !desc::is_root_attribute(fd)) {
        let name = type_ref(fd.kind);
        let Some(name) = name.strip_prefix("sdx:") else { continue };
        if seen.iter().any(|s| s == name) {
            continue;
        }
        match fd.kind {
            Kind::Text { max, line } => {
                let max_s = max.to_string();
                let mut facets = Vec::new();
                if max != usize::MAX {
                    facets.push(("maxLength", max_s.as_str()));
                }
                if line {
                    facets.push(("pattern", r"[^\r\n]*"));
                }
                let doc = match (line, max) {
                    (true, usize::MAX) => "Einzeiliger Text.".to_owned(),
                    (true, m) => format!("Einzeiliger Text, höchstens {m} Zeichen."),
                    (false, usize::MAX) => "Text.".to_owned(),
                    (false, m) => format!("Text, höchstens {m} Zeichen."),
                };
                simple_type(&mut w, name, &doc, "xs:string", &facets);
            }
            Kind::UInt { max } => {
                let max_s = max.to_string();
                simple_type(
                    &mut w,
                    name,
                    &format!("Ganze Zahl von 0 bis {max}."),
                    "xs:unsignedLong",
                    &[("maxInclusive", max_s.as_str())],
                );
            }
            _ => continue,
        }
        seen.push(name.to_owned());
    }
    w.close("xs:schema");
    w.out
}

/// The abstract base of every message: the header element and the root attributes.
fn message_base(w: &mut Writer) {
    w.open(&format!(r#"<xs:complexType name="{MESSAGE_BASE}" abstract="true">"#));
    w.doc("Basis aller Nachrichten: Nachrichtenkopf und die XÖV-Attribute des Wurzelelements.");
    w.open("<xs:sequence>");
    w.open(&format!(r#"<xs:element name="{}" type="sdx:{}">"#, esc(desc::XML_HEADER), esc(desc::HEADER.xml_name)));
    w.doc(desc::HEADER.doc);
    w.close("xs:element");
    w.close("xs:sequence");
    w.open(&format!(
        r#"<xs:attribute name="standard" type="xs:normalizedString" use="required" fixed="{}">"#,
        esc(STANDARD)
    ));
    w.doc("Kennung des Standards (XÖV standard).");
    w.close("xs:attribute");
    for fd in desc::HEADER.fields.iter().filter(|fd| desc::is_root_attribute(fd)) {
        root_attribute(w, fd);
    }
    w.close("xs:complexType");
}

/// A header field carried as an attribute of the root element.
fn root_attribute(w: &mut Writer, fd: &Field) {
    let name = &fd.xml[1..];
    let required = matches!(fd.occurs, Occurs::Required | Occurs::List { min1: true, .. });
    let mut open = format!(r#"<xs:attribute name="{}""#, esc(name));
    // `version` is the schema version: fixed, as in XÖV.
    let fixed = fixed_value(&desc::HEADER, fd);
    let inline = match fd.kind {
        Kind::Text { .. } if fixed.is_some() => {
            open.push_str(r#" type="xs:normalizedString""#);
            None
        }
        Kind::Text { max, .. } if max != usize::MAX => Some(max),
        Kind::Text { .. } => {
            open.push_str(r#" type="xs:normalizedString""#);
            None
        }
        Kind::Bool => {
            open.push_str(r#" type="xs:boolean""#);
            None
        }
        other => {
            open.push_str(&format!(r#" type="{}""#, type_ref(other)));
            None
        }
    };
    open.push_str(if required { r#" use="required""# } else { r#" use="optional""# });
    if let Some(v) = fixed {
        open.push_str(&format!(r#" fixed="{}""#, esc(v)));
    }
    open.push('>');
    w.open(&open);
    w.doc(&field_doc(fd));
    if let Some(max) = inline {
        w.open("<xs:simpleType>");
        w.open(r#"<xs:restriction base="xs:normalizedString">"#);
        w.line(&format!(r#"<xs:maxLength value="{max}"/>"#));
        w.close("xs:restriction");
        w.close("xs:simpleType");
    }
    w.close("xs:attribute");
}

/// A named complex type for a [`TypeDesc`]; message bodies extend [`MESSAGE_BASE`].
fn complex_type(w: &mut Writer, t: &TypeDesc) {
    w.open(&format!(r#"<xs:complexType name="{}">"#, esc(t.xml_name)));
    w.doc(t.doc);
    let body = is_body(t);
    if body {
        w.open("<xs:complexContent>");
        w.open(&format!(r#"<xs:extension base="sdx:{MESSAGE_BASE}">"#));
    }
    w.open("<xs:sequence>");
    for fd in t.fields.iter().filter(|fd| !desc::is_root_attribute(fd)) {
        element(w, t, fd);
    }
    w.close("xs:sequence");
    if body {
        w.close("xs:extension");
        w.close("xs:complexContent");
    }
    w.close("xs:complexType");
}

/// A local element for a field.
fn element(w: &mut Writer, t: &TypeDesc, fd: &Field) {
    let (min, max) = match fd.occurs {
        Occurs::Required => (1, Some(1)),
        Occurs::Optional => (0, Some(1)),
        Occurs::List { max, min1 } => (usize::from(min1), (max != usize::MAX).then_some(max)),
    };
    let mut open = format!(r#"<xs:element name="{}" type="{}""#, esc(fd.xml), type_ref(fd.kind));
    if min != 1 {
        open.push_str(&format!(r#" minOccurs="{min}""#));
    }
    match max {
        Some(1) => {}
        Some(m) => open.push_str(&format!(r#" maxOccurs="{m}""#)),
        None => open.push_str(r#" maxOccurs="unbounded""#),
    }
    if let Some(v) = fixed_value(t, fd) {
        open.push_str(&format!(r#" fixed="{}""#, esc(v)));
    }
    open.push('>');
    w.open(&open);
    if fd.personal {
        w.open("<xs:annotation>");
        w.line(&format!("<xs:documentation>{}</xs:documentation>", esc(&field_doc(fd))));
        w.line(&format!("<xs:documentation>{PERSONAL_NOTE}</xs:documentation>"));
        w.close("xs:annotation");
    } else {
        w.doc(&field_doc(fd));
    }
    w.close("xs:element");
}

/// The (qualified) name of the schema type of a kind.
fn type_ref(kind: Kind) -> String {
    match kind {
        Kind::Text { max, line } => {
            let base = if line { "Textzeile" } else { "Text" };
            if max == usize::MAX { format!("sdx:{base}") } else { format!("sdx:{base}.{max}") }
        }
        Kind::Code(list) => format!("sdx:{}", code_type_name(list)),
        Kind::Ident(i) => format!("sdx:{}", i.type_name()),
        Kind::Timestamp => format!("sdx:{TIMESTAMP_TYPE}"),
        Kind::UInt { max } if max == u64::MAX => "xs:unsignedLong".to_owned(),
        Kind::UInt { max } => format!("sdx:Ganzzahl.{max}"),
        Kind::Bool => "xs:boolean".to_owned(),
        Kind::Object(t) => format!("sdx:{}", t.xml_name),
    }
}

/// The XÖV `Code` type of a codelist: `code` from the list, optional `name`, fixed `listURI` and `listVersionID`.
fn code_type(w: &mut Writer, list: &CodeList) {
    w.open(&format!(r#"<xs:complexType name="{}">"#, esc(&code_type_name(list))));
    w.doc(&codelist_doc(list));
    w.open("<xs:sequence>");
    w.open(r#"<xs:element name="code">"#);
    w.doc("Der Code (the code).");
    w.open("<xs:simpleType>");
    w.open(r#"<xs:restriction base="xs:token">"#);
    for e in list.entries {
        w.open(&format!(r#"<xs:enumeration value="{}">"#, esc(e.code)));
        w.doc(&format!("{}: {}", e.name_de, e.description));
        w.close("xs:enumeration");
    }
    w.close("xs:restriction");
    w.close("xs:simpleType");
    w.close("xs:element");
    w.open(r#"<xs:element name="name" type="xs:normalizedString" minOccurs="0">"#);
    w.doc("Name des Codes laut Codeliste (optional, informativ).");
    w.close("xs:element");
    w.close("xs:sequence");
    w.open(&format!(r#"<xs:attribute name="listURI" type="xs:anyURI" use="required" fixed="{}">"#, esc(list.urn)));
    w.doc("Kennung der Codeliste (URN).");
    w.close("xs:attribute");
    w.open(&format!(
        r#"<xs:attribute name="listVersionID" type="xs:normalizedString" use="required" fixed="{}">"#,
        esc(list.version)
    ));
    w.doc("Version der Codeliste.");
    w.close("xs:attribute");
    w.close("xs:complexType");
}

/// A named simple type restricting `base` by `facets` (name, value).
fn simple_type(w: &mut Writer, name: &str, doc: &str, base: &str, facets: &[(&str, &str)]) {
    w.open(&format!(r#"<xs:simpleType name="{}">"#, esc(name)));
    w.doc(doc);
    w.open(&format!(r#"<xs:restriction base="{base}">"#));
    for (facet, value) in facets {
        w.line(&format!(r#"<xs:{facet} value="{}"/>"#, esc(value)));
    }
    w.close("xs:restriction");
    w.close("xs:simpleType");
}

/// Indenting line writer.
#[derive(Default)]
struct Writer {
    out: String,
    depth: usize,
}

impl Writer {
    fn line(&mut self, s: &str) {
        let _ = writeln!(self.out, "{:width$}{s}", "", width = self.depth * 2);
    }
    fn open(&mut self, s: &str) {
        self.line(s);
        self.depth += 1;
    }
    fn close(&mut self, name: &str) {
        self.depth -= 1;
        self.line(&format!("</{name}>"));
    }
    fn doc(&mut self, text: &str) {
        self.line(&format!("<xs:annotation><xs:documentation>{}</xs:documentation></xs:annotation>", esc(text)));
    }
    fn comment(&mut self, text: &str) {
        self.out.push('\n');
        self.line(&format!("<!-- {} -->", text.replace("--", "- -")));
    }
}
