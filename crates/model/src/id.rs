//! Identifiers and scalar value types, each with a `parse` constructor: an invalid value cannot exist past the edge.
//!
//! Error messages start with `[invalidIdentifier]` or `[invalidTimestamp]` so that decoders can map a failure
//! inside serde to the stable error code.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A value that does not have the form its type requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[{code}] {what}: {reason}")]
pub struct InvalidValue {
    /// `invalidIdentifier`, `invalidTimestamp` or `tooLarge`.
    pub code: &'static str,
    /// Which kind of value.
    pub what: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn invalid(what: &'static str, reason: impl Into<String>) -> InvalidValue {
    InvalidValue { code: "invalidIdentifier", what, reason: reason.into() }
}

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident, $what:literal, $check:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parse, checking the form.
            pub fn parse(s: impl Into<String>) -> Result<Self, InvalidValue> {
                let s = s.into();
                let check: fn(&str) -> Result<(), String> = $check;
                check(&s).map_err(|r| invalid($what, r))?;
                Ok($name(s))
            }
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, InvalidValue> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, InvalidValue> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn shown(s: &str) -> String {
    let mut t: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        t.push('…');
    }
    format!("`{t}`")
}

string_id!(
    /// Leistungsschlüssel (LeiKa key): 14 digits starting with `99`, e.g. `99134005017000`.
    LeikaKey,
    "LeiKa key",
    |s| {
        if s.len() == 14 && s.starts_with("99") && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(())
        } else {
            Err(format!("{} must be 14 digits starting with 99", shown(s)))
        }
    }
);

string_id!(
    /// Amtlicher Regionalschlüssel (ARS) or one of its meaningful prefixes: 2, 3, 5, 9 or 12 digits.
    Ars,
    "ARS",
    |s| {
        if matches!(s.len(), 2 | 3 | 5 | 9 | 12) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(())
        } else {
            Err(format!("{} must be 2, 3, 5, 9 or 12 digits", shown(s)))
        }
    }
);

string_id!(
    /// DVDV-style organisation key `prefix:id`: three lowercase letters, a colon, then 1–64 of `[A-Za-z0-9._-]`,
    /// e.g. `psw:01003110`.
    OrgKey,
    "organisation key",
    |s| {
        let ok = match s.split_once(':') {
            Some((p, id)) => {
                p.len() == 3
                    && p.bytes().all(|b| b.is_ascii_lowercase())
                    && (1..=64).contains(&id.len())
                    && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            }
            None => false,
        };
        if ok { Ok(()) } else { Err(format!("{} must look like `psw:01003110` (abc:ID)", shown(s))) }
    }
);

string_id!(
    /// OZG id of an online service. No published format: any 1–64 printable ASCII characters without spaces.
    OzgId,
    "OZG id",
    |s| {
        if (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(())
        } else {
            Err(format!("{} must be 1-64 printable ASCII characters without spaces", shown(s)))
        }
    }
);

string_id!(
    /// SHA-256 digest as 64 lowercase hexadecimal digits.
    Sha256Hex,
    "SHA-256 digest",
    |s| {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(())
        } else {
            Err(format!("{} must be 64 lowercase hex digits", shown(s)))
        }
    }
);

string_id!(
    /// Media type (RFC 6838 `type/subtype`, parameters allowed), at most 127 characters.
    MediaType,
    "media type",
    |s| {
        let main = s.split(';').next().unwrap_or("");
        let tok = |t: &str| {
            !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        };
        let ok = s.len() <= 127
            && s.is_ascii()
            && !s.chars().any(|c| c.is_ascii_control())
            && main.split_once('/').is_some_and(|(t, st)| tok(t) && tok(st.trim_end()));
        if ok { Ok(()) } else { Err(format!("{} is not a media type like `application/pdf`", shown(s))) }
    }
);

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A fresh random (version 4) id.
            pub fn new_random() -> Self {
                $name(uuid::Uuid::new_v4())
            }
            /// A fresh time-ordered (version 7: milliseconds since 1970, then random bits) id. Ids made one after
            /// the other sort in that order, so a database inserts them at the end of its indexes instead of
            /// touching a random page of each index per row.
            pub fn new_time_ordered() -> Self {
                $name(uuid::Uuid::now_v7())
            }
            /// Parse the hyphenated lowercase form (RFC 9562), e.g. `6f1c…-…`.
            pub fn parse(s: &str) -> Result<Self, InvalidValue> {
                let ok_form = s.len() == 36 && !s.bytes().any(|b| b.is_ascii_uppercase());
                match uuid::Uuid::try_parse(s) {
                    Ok(u) if ok_form => Ok($name(u)),
                    _ => Err(invalid($what, format!("{} must be a lowercase hyphenated UUID", shown(s)))),
                }
            }
            /// The underlying UUID.
            pub fn uuid(&self) -> uuid::Uuid {
                self.0
            }
            /// From a UUID.
            pub fn from_uuid(u: uuid::Uuid) -> Self {
                $name(u)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, InvalidValue> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0.hyphenated().to_string()
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, InvalidValue> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }
    };
}

uuid_id!(
    /// Case id: the same at every organisation that holds the case (UUID).
    CaseId,
    "case id"
);
uuid_id!(
    /// Message id (XÖV `nachrichtenUUID`).
    MessageId,
    "message id"
);
uuid_id!(
    /// Id of a journal entry, attachment or service notice (UUID).
    ItemId,
    "item id"
);

/// A point in time: RFC 3339 with an explicit offset (`Z` or `±hh:mm`). Serialized in RFC 3339.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// Parse RFC 3339 (`2026-11-29T10:15:00Z`, `2026-11-29T11:15:00+01:00`). Years 1970–9999.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let bad = |r: String| InvalidValue { code: "invalidTimestamp", what: "timestamp", reason: r };
        if s.len() > 40 {
            return Err(bad(format!("{} is too long", shown(s))));
        }
        let t = OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| bad(format!("{} is not RFC 3339 with offset: {e}", shown(s))))?;
        if !(1970..=9999).contains(&t.year()) {
            return Err(bad(format!("{} is outside the years 1970-9999", shown(s))));
        }
        Ok(Timestamp(t))
    }
    /// The current time in UTC, truncated to milliseconds.
    pub fn now() -> Self {
        let t = OffsetDateTime::now_utc();
        Timestamp(t.replace_millisecond(t.millisecond()).unwrap_or(t))
    }
    /// From a `time` value.
    pub fn from_offset_date_time(t: OffsetDateTime) -> Self {
        Timestamp(t)
    }
    /// The `time` value.
    pub fn as_offset_date_time(&self) -> OffsetDateTime {
        self.0
    }
    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(&self) -> i128 {
        self.0.unix_timestamp_nanos() / 1_000_000
    }
}

impl TryFrom<String> for Timestamp {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, InvalidValue> {
        Self::parse(&s)
    }
}

impl From<Timestamp> for String {
    fn from(t: Timestamp) -> String {
        t.to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(&Rfc3339) {
            Ok(s) => f.write_str(&s),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl FromStr for Timestamp {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, InvalidValue> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leika_ars_org() {
        assert!(LeikaKey::parse("99134005017000").is_ok());
        assert!(LeikaKey::parse("98134005017000").is_err());
        assert!(LeikaKey::parse("9913400501700").is_err());
        for ok in ["06", "064", "06412", "064120000", "064120000000"] {
            assert!(Ars::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["0", "0641", "06412000000a", "0641200000000"] {
            assert!(Ars::parse(bad).is_err(), "{bad}");
        }
        assert!(OrgKey::parse("psw:01003110").is_ok());
        assert!(OrgKey::parse("PSW:01003110").is_err());
        assert!(OrgKey::parse("psw:").is_err());
        assert!(OrgKey::parse("psw01003110").is_err());
        let e = OrgKey::parse("x").unwrap_err().to_string();
        assert!(e.starts_with("[invalidIdentifier]"), "{e}");
    }

    #[test]
    fn uuids_and_timestamps() {
        let id = "6f1c2a9e-3b7d-4c1e-9a2b-0d4e5f607182";
        assert_eq!(CaseId::parse(id).unwrap().to_string(), id);
        assert!(CaseId::parse(&id.to_uppercase()).is_err());
        assert!(CaseId::parse("6f1c2a9e3b7d4c1e9a2b0d4e5f607182").is_err());
        let t = Timestamp::parse("2026-11-29T10:15:00+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-29T10:15:00+01:00");
        assert_eq!(Timestamp::parse("2026-11-29T10:15:00.250Z").unwrap().to_string(), "2026-11-29T10:15:00.25Z");
        assert!(Timestamp::parse("2026-11-29T10:15:00").is_err());
        assert!(Timestamp::parse("2026-11-29").is_err());
        assert!(MediaType::parse("application/pdf").is_ok());
        assert!(MediaType::parse("image/png; q=1").is_ok());
        assert!(MediaType::parse("pdf").is_err());
    }
}
