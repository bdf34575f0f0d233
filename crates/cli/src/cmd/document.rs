//! `sdx validate` and `sdx convert`.

use std::path::{Path, PathBuf};

use anyhow::Result;
use sdx_codec::{Diagnostic, Format, json, xml};
use sdx_model::rules::limits;
use sdx_model::{Coded, ErrorCode, Message};

use crate::Outcome;
use crate::io::{self, Input};

/// Read, detect, decode and check one document; findings go to stderr.
pub fn load(path: &Path) -> Result<std::result::Result<(Format, Message), Vec<Diagnostic>>> {
    Ok(match io::read(path, limits::MAX_DOCUMENT_BYTES)? {
        Input::TooLarge => Err(vec![Diagnostic::new(
            ErrorCode::TooLarge,
            format!("larger than {} bytes (see docs/limits.md)", limits::MAX_DOCUMENT_BYTES),
        )]),
        Input::Bytes(b) => sdx_codec::validate(&b),
    })
}

/// Print findings as `FILE:LINE:COL: code: message (at POINTER / XPATH)` on stderr.
pub fn report(name: &str, diags: &[Diagnostic]) {
    for d in diags {
        let pos = match (d.line, d.column) {
            (Some(l), Some(c)) => format!("{l}:{c}:"),
            _ => String::new(),
        };
        let mut at = Vec::new();
        if let Some(p) = &d.pointer {
            at.push(if p.is_empty() { "/".to_string() } else { p.clone() });
        }
        if let Some(x) = &d.xpath {
            at.push(x.clone());
        }
        let at = if at.is_empty() { String::new() } else { format!(" (at {})", at.join(" = ")) };
        eprintln!("{name}:{pos} error[{}]: {}{at}", d.code.code(), d.message);
    }
}

fn diag_json(name: &str, d: &Diagnostic) -> serde_json::Value {
    serde_json::json!({
        "file": name, "code": d.code.code(), "message": d.message,
        "pointer": d.pointer, "xpath": d.xpath, "line": d.line, "column": d.column,
    })
}

/// `sdx validate FILE...`
pub fn validate(files: &[PathBuf], json_out: bool) -> Result<Outcome> {
    let mut all_valid = true;
    for f in files {
        let name = io::name(f);
        match load(f)? {
            Ok((format, m)) => {
                println!("{name}: valid ({} {})", format.as_str(), m.header.message_type);
                if json_out {
                    println!("{}", serde_json::json!({"file": name, "valid": true}));
                }
            }
            Err(diags) => {
                all_valid = false;
                report(&name, &diags);
                if json_out {
                    for d in &diags {
                        println!("{}", diag_json(&name, d));
                    }
                }
            }
        }
    }
    Ok(if all_valid { Outcome::Valid } else { Outcome::Invalid })
}

/// `sdx convert --to json|xml FILE`
pub fn convert(file: &Path, to_xml: bool) -> Result<Outcome> {
    match load(file)? {
        Ok((_, m)) => {
            let out = if to_xml { xml::encode(&m) } else { json::encode(&m) };
            io::stdout(out.as_bytes())?;
            Ok(Outcome::Valid)
        }
        Err(diags) => {
            report(&io::name(file), &diags);
            Ok(Outcome::Invalid)
        }
    }
}
