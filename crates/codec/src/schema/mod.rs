//! The published schemas, generated from the format description ([`crate::desc`]) and the codelists
//! ([`sdx_model::codelist::ALL`]): a JSON Schema (draft 2020-12), an XML Schema 1.0 in XÖV style and one OASIS
//! Genericode 1.0 file per codelist.
//!
//! Nothing here keeps its own list of fields, types or codes: every schema is a walk over `desc`, so a
//! field added there appears in all of them. The functions are pure; `sdx schema --out DIR` writes [`files`].
//!
//! # Layout
//! - [`json_schema()`]: one schema for every SDX message in JSON (`sdx.schema.json`).
//! - [`xsd()`]: one XSD with a root element per message type (`sdx.xsd`), codes as XÖV `Code` types.
//! - [`genericode()`]: one codelist as Genericode (`codelists/<id>.xml`).

mod genericode;
mod json_schema;
mod xsd;

use sdx_model::codelist::{self, CodeList};

use crate::desc::{self, Field, Ident, Kind, TypeDesc};

pub use genericode::genericode;
pub use json_schema::json_schema;
pub use xsd::xsd;

/// File name of the JSON Schema in the output of [`files`].
pub const JSON_SCHEMA_FILE: &str = "sdx.schema.json";
/// File name of the XML Schema in the output of [`files`].
pub const XSD_FILE: &str = "sdx.xsd";
/// Folder of the Genericode files in the output of [`files`].
pub const CODELIST_DIR: &str = "codelists";

/// `$id` of the JSON Schema: the XML namespace with `:json` appended.
pub fn json_schema_id() -> String {
    format!("{}:json", desc::XML_NAMESPACE)
}

/// Relative path of the Genericode file of `list`, e.g. `codelists/status.xml`.
pub fn codelist_path(list: &CodeList) -> String {
    format!("{CODELIST_DIR}/{}.xml", list.id)
}

/// Every schema file as (relative path with `/` separators, content): [`JSON_SCHEMA_FILE`], [`XSD_FILE`] and
/// one Genericode file per codelist in [`codelist::ALL`].
pub fn files() -> Vec<(String, String)> {
    let mut json = serde_json::to_string_pretty(&json_schema()).expect("a JSON value always serializes");
    json.push('\n');
    let mut out = vec![(JSON_SCHEMA_FILE.to_owned(), json), (XSD_FILE.to_owned(), xsd())];
    out.extend(codelist::ALL.iter().map(|l| (codelist_path(l), genericode(l))));
    out
}

// ---- walks over the format description, shared by the generators -------------------------------------------

/// Every field of every type in [`desc::ALL_TYPES`].
fn all_fields() -> impl Iterator<Item = &'static Field> {
    desc::ALL_TYPES.iter().flat_map(|t| t.fields.iter())
}

/// The codelists that fields use, in order of first use.
fn used_codelists() -> Vec<&'static CodeList> {
    let mut out: Vec<&'static CodeList> = Vec::new();
    for fd in all_fields() {
        if let Kind::Code(l) = fd.kind
            && !out.iter().any(|o| o.id == l.id)
        {
            out.push(l);
        }
    }
    out
}

/// The identifier forms that fields use, in order of first use.
fn used_idents() -> Vec<Ident> {
    let mut out = Vec::new();
    for fd in all_fields() {
        if let Kind::Ident(i) = fd.kind
            && !out.contains(&i)
        {
            out.push(i);
        }
    }
    out
}

/// Whether `t` is the body of a message type (then it is a message in XML, not a nested structure).
fn is_body(t: &TypeDesc) -> bool {
    desc::MESSAGES.iter().any(|m| std::ptr::eq(m.body, t))
}

/// Name of the schema type of a codelist, XÖV style: `Code.` and the list id with a capital, e.g. `Code.Status`.
fn code_type_name(list: &CodeList) -> String {
    let mut c = list.id.chars();
    match c.next() {
        Some(first) => format!("Code.{}{}", first.to_uppercase(), c.as_str()),
        None => "Code.".to_owned(),
    }
}

/// The value a field must have in this schema version, if any: the header's `schemaVersion` (XML: root
/// attribute `version`) and `codelistVersion`. XÖV fixes the `version` attribute in the XSD; the JSON Schema
/// says the same with `const`.
fn fixed_value(t: &TypeDesc, fd: &Field) -> Option<&'static str> {
    if !std::ptr::eq(t, &desc::HEADER) {
        return None;
    }
    match fd.json {
        "schemaVersion" => Some(sdx_model::message::SCHEMA_VERSION),
        "codelistVersion" => Some(codelist::CODELIST_VERSION),
        _ => None,
    }
}

/// Name of the timestamp type in both schemas.
const TIMESTAMP_TYPE: &str = "Zeitpunkt";

/// What an identifier form is, for the schemas' documentation.
fn ident_doc(i: Ident) -> &'static str {
    match i {
        Ident::Uuid => "UUID (RFC 9562) in lowercase hyphenated form.",
        Ident::Leika => "Leistungsschluessel (LeiKa key): 14 digits starting with 99.",
        Ident::Ars => "Amtlicher Regionalschluessel (ARS) or a meaningful prefix: 2, 3, 5, 9 or 12 digits.",
        Ident::OrgKey => {
            "Organisation key as in the DVDV: three lowercase letters, a colon and 1-64 of [A-Za-z0-9._-], e.g. psw:01003110."
        }
        Ident::OzgId => "OZG id of an online service: 1-64 printable ASCII characters without spaces.",
        Ident::Sha256 => "SHA-256 digest as 64 lowercase hexadecimal digits.",
        Ident::MediaType => "Media type (RFC 6838), type/subtype with optional parameters.",
    }
}

/// Description of a codelist, for the schemas' documentation.
fn codelist_doc(list: &CodeList) -> String {
    format!("Codeliste {} ({}), {} version {}. {}", list.id, list.name_de, list.urn, list.version, list.description)
}

/// Documentation of a field: its doc and its TMF621 / ITIL equivalents.
fn field_doc(fd: &Field) -> String {
    let mut s = fd.doc.to_owned();
    if !fd.tmf621.is_empty() {
        s.push_str(&format!(" TMF621: {}.", fd.tmf621));
    }
    if !fd.itil.is_empty() {
        s.push_str(&format!(" ITIL: {}.", fd.itil));
    }
    s
}

/// Escape text for XML content and attribute values (both quote kinds).
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_names() {
        assert_eq!(xml_escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(code_type_name(&codelist::STATUS), "Code.Status");
        assert_eq!(code_type_name(&codelist::TICKET_TYPE), "Code.TicketType");
    }

    #[test]
    fn files_are_named_and_complete() {
        let f = files();
        assert_eq!(f.len(), 2 + codelist::ALL.len());
        assert_eq!(f[0].0, "sdx.schema.json");
        assert_eq!(f[1].0, "sdx.xsd");
        assert!(f.iter().any(|(p, _)| p == "codelists/status.xml"));
    }
}
