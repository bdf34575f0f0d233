//! Markdown tables for `docs/model.md` and `docs/codelists.md`, generated from [`crate::desc`] and the
//! codelists so the documentation cannot drift from the code (a test compares them with the committed files).

use std::fmt::Write as _;

use sdx_model::codelist;

use crate::desc::{self, Field, Ident, Kind, Occurs, TypeDesc};

fn kind_name(k: Kind) -> String {
    match k {
        Kind::Text { max, line } if max == usize::MAX => format!("text{}", if line { " (one line)" } else { "" }),
        Kind::Text { max, line } => format!("text ≤ {max}{}", if line { ", one line" } else { "" }),
        Kind::Code(l) => format!("code `{}`", l.id),
        Kind::Ident(Ident::Uuid) => "UUID".into(),
        Kind::Ident(i) => i.type_name().into(),
        Kind::Timestamp => "timestamp".into(),
        Kind::UInt { .. } => "integer ≥ 0".into(),
        Kind::Bool => "boolean".into(),
        Kind::Object(t) => format!("[{}](#{})", t.json_name, t.json_name.to_lowercase()),
    }
}

fn occurs(o: Occurs) -> &'static str {
    match o {
        Occurs::Required => "1",
        Occurs::Optional => "0..1",
        Occurs::List { min1: true, .. } => "1..n",
        Occurs::List { min1: false, .. } => "0..n",
    }
}

fn row(out: &mut String, f: &Field) {
    let personal = if f.personal { " **Personal data.**" } else { "" };
    let dash = |s: &str| if s.is_empty() { "–".to_string() } else { s.replace('|', "\\|") };
    let _ = writeln!(
        out,
        "| `{}` | `{}` | {} | {} | {}{} | {} | {} |",
        f.json,
        f.xml,
        kind_name(f.kind),
        occurs(f.occurs),
        f.doc,
        personal,
        dash(f.tmf621),
        dash(f.itil)
    );
}

fn table(out: &mut String, t: &TypeDesc) {
    let _ = writeln!(out, "### {}\n", t.json_name);
    let _ = writeln!(out, "XML type `{}`. {}\n", t.xml_name, t.doc);
    let _ = writeln!(out, "| JSON | XML | kind | occurs | meaning | TMF621 | ITIL |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for f in t.fields {
        row(out, f);
    }
    out.push('\n');
}

/// The field tables of every type, and the message types with their XML root elements.
pub fn model_tables() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### Message types\n");
    let _ = writeln!(out, "| `messageType` | JSON body member | XML root element | body |");
    let _ = writeln!(out, "|---|---|---|---|");
    for m in desc::MESSAGES {
        let _ = writeln!(
            out,
            "| `{0}` | `body.{0}` | `sdx:{1}` | [{2}](#{3}) |",
            m.code,
            m.root,
            m.body.json_name,
            m.body.json_name.to_lowercase()
        );
    }
    out.push('\n');
    for t in desc::ALL_TYPES {
        table(&mut out, t);
    }
    out
}

/// One table per codelist.
pub fn codelist_tables() -> String {
    let mut out = String::new();
    for l in codelist::ALL {
        let _ = writeln!(out, "### `{}` — {}\n", l.id, l.name_de);
        let _ = writeln!(out, "URN `{}`, version `{}`. {}\n", l.urn, l.version, l.description);
        let _ = writeln!(out, "| code | Name (de) | meaning |");
        let _ = writeln!(out, "|---|---|---|");
        for e in l.entries {
            let _ = writeln!(out, "| `{}` | {} | {} |", e.code, e.name_de, e.description);
        }
        out.push('\n');
    }
    out
}

/// Marker lines between which the generated part of a Markdown file stands.
pub const BEGIN: &str =
    "<!-- BEGIN GENERATED: do not edit; regenerate with SDX_UPDATE_DOCS=1 cargo test -p sdx-codec --test docs -->";
/// End marker.
pub const END: &str = "<!-- END GENERATED -->";

/// Replace the generated part of `doc` with `generated`; `None` if the markers are missing.
pub fn splice(doc: &str, generated: &str) -> Option<String> {
    let b = doc.find(BEGIN)?;
    let e = doc.find(END)?;
    if e < b {
        return None;
    }
    Some(format!("{}{BEGIN}\n\n{generated}{}", &doc[..b], &doc[e..]))
}
