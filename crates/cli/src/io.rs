//! Reading inputs within the documented size limit and writing outputs.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use sdx_model::rules::limits;

/// Largest input any command reads: a document plus the JOSE overhead (base64 grows by 4/3).
pub const MAX_INPUT_BYTES: usize = limits::MAX_DOCUMENT_BYTES / 3 * 4 + 64 * 1024;

/// An input: its bytes, or the news that it is larger than allowed.
pub enum Input {
    /// The bytes.
    Bytes(Vec<u8>),
    /// More than the limit; reading stopped there.
    TooLarge,
}

/// Read a file (or standard input for `-`) up to `limit` bytes. I/O problems are errors (exit 2).
pub fn read(path: &Path, limit: usize) -> Result<Input> {
    let mut buf = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    if path.as_os_str() == "-" {
        std::io::stdin().lock().take(cap).read_to_end(&mut buf).context("cannot read standard input")?;
    } else {
        let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        f.take(cap).read_to_end(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
    }
    Ok(if buf.len() > limit { Input::TooLarge } else { Input::Bytes(buf) })
}

/// Read a small text file such as a key (at most 64 KiB).
pub fn read_key(path: &Path) -> Result<String> {
    match read(path, 64 * 1024)? {
        Input::Bytes(b) => String::from_utf8(b).with_context(|| format!("{} is not UTF-8 text", path.display())),
        Input::TooLarge => anyhow::bail!("{} is larger than 64 KiB: not a key file", path.display()),
    }
}

/// Write bytes to standard output.
pub fn stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).and_then(|()| out.flush()).context("cannot write to standard output")
}

/// Name of an input for messages.
pub fn name(path: &Path) -> String {
    if path.as_os_str() == "-" { "<stdin>".into() } else { path.display().to_string() }
}
