//! `sdx schema --out DIR`: JSON Schema, XSD and Genericode codelists.

use std::path::Path;

use anyhow::{Context, Result};

use crate::Outcome;

/// Write every schema file into `out`.
pub fn write(out: &Path) -> Result<Outcome> {
    let files = sdx_codec::schema::files();
    for (rel, content) in &files {
        let path = out.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&path, content).with_context(|| format!("cannot write {}", path.display()))?;
    }
    eprintln!("wrote {} files to {}", files.len(), out.display());
    Ok(Outcome::Valid)
}
