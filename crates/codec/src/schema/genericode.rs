//! OASIS Genericode 1.0 export of a codelist, laid out as XÖV / XRepository lists are: `Identification` with
//! the list's description in `Annotation` (Dublin Core), the URN as `CanonicalUri` and `urn_version` as `CanonicalVersionUri`, columns `code` (key `codeKey`),
//! `name` (German name) and `beschreibung` (description), one `Row` per entry in list order.

use std::fmt::Write as _;

use sdx_model::codelist::CodeList;

use super::xml_escape as esc;

/// Namespace of OASIS Genericode 1.0.
pub const GENERICODE_NAMESPACE: &str = "http://docs.oasis-open.org/codelist/ns/genericode/1.0/";

/// Dublin Core terms, for the description of the list in `Annotation/Description`.
const DCTERMS: &str = "http://purl.org/dc/terms/";

/// The columns: id, short name, use, language of the values.
const COLUMNS: [(&str, &str, &str, Option<&str>); 3] = [
    ("code", "Code", "required", None),
    ("name", "Name", "required", Some("de")),
    ("beschreibung", "Beschreibung", "optional", Some("en")),
];

/// The codelist as a Genericode 1.0 document.
pub fn genericode(list: &CodeList) -> String {
    let mut o = String::new();
    let mut l = |depth: usize, s: &str| {
        let _ = writeln!(o, "{:w$}{s}", "", w = depth * 2);
    };
    l(0, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    l(0, "<!-- Generated from the SDX codelists (sdx-model, codelist.rs). Do not edit. -->");
    l(0, &format!(r#"<gc:CodeList xmlns:gc="{GENERICODE_NAMESPACE}">"#));
    l(1, "<Annotation>");
    l(2, "<Description>");
    l(
        3,
        &format!(
            r#"<dcterms:description xmlns:dcterms="{DCTERMS}" xml:lang="en">{}</dcterms:description>"#,
            esc(list.description)
        ),
    );
    l(2, "</Description>");
    l(1, "</Annotation>");
    l(1, "<Identification>");
    l(2, &format!("<ShortName>{}</ShortName>", esc(list.id)));
    l(2, &format!("<LongName>{}</LongName>", esc(list.name_de)));
    l(2, &format!("<Version>{}</Version>", esc(list.version)));
    l(2, &format!("<CanonicalUri>{}</CanonicalUri>", esc(list.urn)));
    l(2, &format!("<CanonicalVersionUri>{}_{}</CanonicalVersionUri>", esc(list.urn), esc(list.version)));
    l(1, "</Identification>");
    l(1, "<ColumnSet>");
    for (id, short, usage, lang) in COLUMNS {
        l(2, &format!(r#"<Column Id="{id}" Use="{usage}">"#));
        l(3, &format!("<ShortName>{short}</ShortName>"));
        match lang {
            Some(lang) => l(3, &format!(r#"<Data Type="string" Lang="{lang}"/>"#)),
            None => l(3, r#"<Data Type="string"/>"#),
        }
        l(2, "</Column>");
    }
    l(2, r#"<Key Id="codeKey">"#);
    l(3, "<ShortName>CodeKey</ShortName>");
    l(3, r#"<ColumnRef Ref="code"/>"#);
    l(2, "</Key>");
    l(1, "</ColumnSet>");
    l(1, "<SimpleCodeList>");
    for e in list.entries {
        l(2, "<Row>");
        for (column, value) in [("code", e.code), ("name", e.name_de), ("beschreibung", e.description)] {
            l(3, &format!(r#"<Value ColumnRef="{column}"><SimpleValue>{}</SimpleValue></Value>"#, esc(value)));
        }
        l(2, "</Row>");
    }
    l(1, "</SimpleCodeList>");
    l(0, "</gc:CodeList>");
    o
}
