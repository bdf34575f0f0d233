//! Diagnostics: what is wrong with a document, with a stable code and a location.

use std::fmt;

use sdx_model::ErrorCode;

/// One finding about a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable code from the `errorCode` codelist.
    pub code: ErrorCode,
    /// JSON pointer (RFC 6901) into the JSON form, when the finding concerns a member.
    pub pointer: Option<String>,
    /// XPath into the XML form, when the input was XML.
    pub xpath: Option<String>,
    /// 1-based line in the input, where known.
    pub line: Option<u32>,
    /// 1-based column in the input, where known.
    pub column: Option<u32>,
    /// What is wrong. Never contains personal data beyond a short excerpt of the offending value.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic without location.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Diagnostic { code, pointer: None, xpath: None, line: None, column: None, message: message.into() }
    }

    /// With a JSON pointer.
    pub fn at(mut self, pointer: impl Into<String>) -> Self {
        self.pointer = Some(pointer.into());
        self
    }

    /// With a line and column.
    pub fn at_line(mut self, line: usize, column: usize) -> Self {
        self.line = u32::try_from(line).ok();
        self.column = u32::try_from(column).ok();
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, " at {l}:{c}")?;
        }
        match (&self.xpath, &self.pointer) {
            (Some(x), _) => write!(f, " {x}")?,
            (None, Some(p)) => write!(f, " {}", if p.is_empty() { "/" } else { p })?,
            _ => {}
        }
        write!(f, ": {}", self.message)
    }
}

/// Split a message of the form `[code] text` (as produced by the model's parse constructors inside serde)
/// into its code and text.
pub(crate) fn coded_message(msg: &str) -> Option<(ErrorCode, &str)> {
    use sdx_model::Coded;
    let rest = msg.strip_prefix('[')?;
    let (code, text) = rest.split_once("] ")?;
    Some((ErrorCode::parse(code).ok()?, text))
}

/// Byte offset → 1-based (line, column in characters).
pub(crate) fn line_col(input: &[u8], offset: usize) -> (usize, usize) {
    let upto = &input[..offset.min(input.len())];
    let line = upto.iter().filter(|b| **b == b'\n').count() + 1;
    let start = upto.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let col = String::from_utf8_lossy(&upto[start..]).chars().count() + 1;
    (line, col)
}

/// The input without a UTF-8 byte-order mark, or `tooLarge` if it exceeds the document limit.
pub(crate) fn within_limit(input: &[u8]) -> Result<&[u8], Vec<Diagnostic>> {
    use sdx_model::rules::limits::MAX_DOCUMENT_BYTES;
    if input.len() > MAX_DOCUMENT_BYTES {
        return Err(vec![Diagnostic::new(
            ErrorCode::TooLarge,
            format!("document has {} bytes, at most {MAX_DOCUMENT_BYTES} allowed", input.len()),
        )]);
    }
    Ok(input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input))
}
