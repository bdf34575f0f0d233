//! What changed between two directories: organisations added, removed or changed (field by field, capabilities
//! included), and assignments (service, region, level, organisation, rank) added or removed. Human readable via
//! `Display`, machine readable via `Serialize`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use sdx_model::{OrgKey, SupportLevel, Timestamp};

use crate::document::{Capabilities, Directory, Organisation, Region, ServiceId};

/// The differences between an old and a new directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diff {
    /// Version of the old directory.
    pub from_version: u64,
    /// Version of the new directory.
    pub to_version: u64,
    /// Changes of the document's own fields (issuer, issuedAt, expiresAt).
    pub header: Vec<FieldChange>,
    /// Organisations only in the new directory.
    pub organisations_added: Vec<OrgKey>,
    /// Organisations only in the old directory.
    pub organisations_removed: Vec<OrgKey>,
    /// Organisations in both, with what changed.
    pub organisations_changed: Vec<OrganisationChange>,
    /// Assignments only in the new directory.
    pub responsibilities_added: Vec<Assignment>,
    /// Assignments only in the old directory.
    pub responsibilities_removed: Vec<Assignment>,
}

/// The changes of one organisation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrganisationChange {
    /// The organisation.
    pub key: OrgKey,
    /// What changed.
    pub changes: Vec<FieldChange>,
}

/// One changed field: a value replaced (`old`/`new`), or members of a list added and removed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldChange {
    /// The field, e.g. `endpoint` or `capabilities.maxAttachmentBytes`.
    pub field: String,
    /// The old value (`null`: absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    /// The new value (`null`: absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
    /// List members added.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<String>,
    /// List members removed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
}

/// One (service, region, level) → organisation assignment, as the index sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// The service.
    pub service: ServiceId,
    /// The region.
    pub region: Region,
    /// The support level.
    pub level: SupportLevel,
    /// The organisation.
    pub organisation: OrgKey,
    /// Its rank.
    pub rank: u32,
}

impl fmt::Display for Assignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in {} ({}) at {} → {}",
            self.service,
            self.region,
            self.region.level(),
            self.level,
            self.organisation
        )?;
        if self.rank != 0 {
            write!(f, ", rank {}", self.rank)?;
        }
        Ok(())
    }
}

impl Diff {
    /// Compare `old` with `new`.
    #[must_use]
    pub fn between(old: &Directory, new: &Directory) -> Diff {
        let mut header = Vec::new();
        scalar(&mut header, "issuer", &old.issuer, &new.issuer);
        scalar::<Timestamp>(&mut header, "issuedAt", &old.issued_at, &new.issued_at);
        scalar::<Timestamp>(&mut header, "expiresAt", &old.expires_at, &new.expires_at);

        let olds: BTreeMap<&OrgKey, &Organisation> = old.organisations.iter().map(|o| (&o.key, o)).collect();
        let news: BTreeMap<&OrgKey, &Organisation> = new.organisations.iter().map(|o| (&o.key, o)).collect();
        let organisations_added = news.keys().filter(|k| !olds.contains_key(*k)).map(|k| (*k).clone()).collect();
        let organisations_removed = olds.keys().filter(|k| !news.contains_key(*k)).map(|k| (*k).clone()).collect();
        let organisations_changed = olds
            .iter()
            .filter_map(|(k, o)| {
                let n = news.get(k)?;
                let changes = organisation_changes(o, n);
                (!changes.is_empty()).then(|| OrganisationChange { key: (*k).clone(), changes })
            })
            .collect();

        let (a, b) = (assignments(old), assignments(new));
        Diff {
            from_version: old.version,
            to_version: new.version,
            header,
            organisations_added,
            organisations_removed,
            organisations_changed,
            responsibilities_added: b.difference(&a).cloned().collect(),
            responsibilities_removed: a.difference(&b).cloned().collect(),
        }
    }

    /// Whether nothing but (perhaps) the version differs.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.header.is_empty()
            && self.organisations_added.is_empty()
            && self.organisations_removed.is_empty()
            && self.organisations_changed.is_empty()
            && self.responsibilities_added.is_empty()
            && self.responsibilities_removed.is_empty()
    }
}

/// Every assignment of a directory.
#[must_use]
pub fn assignments(d: &Directory) -> BTreeSet<Assignment> {
    let mut out = BTreeSet::new();
    for r in &d.responsibilities {
        for s in &r.services {
            for g in &r.regions {
                out.insert(Assignment {
                    service: s.clone(),
                    region: g.clone(),
                    level: r.level,
                    organisation: r.organisation.clone(),
                    rank: r.rank,
                });
            }
        }
    }
    out
}

fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn scalar<T: Serialize + PartialEq>(out: &mut Vec<FieldChange>, field: &str, old: &T, new: &T) {
    if old != new {
        out.push(FieldChange {
            field: field.to_owned(),
            old: Some(json(old)),
            new: Some(json(new)),
            added: Vec::new(),
            removed: Vec::new(),
        });
    }
}

fn set(out: &mut Vec<FieldChange>, field: &str, old: BTreeSet<String>, new: BTreeSet<String>) {
    let added: Vec<String> = new.difference(&old).cloned().collect();
    let removed: Vec<String> = old.difference(&new).cloned().collect();
    if !added.is_empty() || !removed.is_empty() {
        out.push(FieldChange { field: field.to_owned(), old: None, new: None, added, removed });
    }
}

fn strings<T: ToString>(l: impl IntoIterator<Item = T>) -> BTreeSet<String> {
    l.into_iter().map(|x| x.to_string()).collect()
}

fn organisation_changes(o: &Organisation, n: &Organisation) -> Vec<FieldChange> {
    let mut c = Vec::new();
    scalar(&mut c, "name", &o.name, &n.name);
    scalar(&mut c, "endpoint", &o.endpoint, &n.endpoint);
    set(&mut c, "roles", strings(o.roles.iter().map(|r| r.code())), strings(n.roles.iter().map(|r| r.code())));
    set(&mut c, "tls", strings(o.tls_fingerprints()), strings(n.tls_fingerprints()));
    set(
        &mut c,
        "signingKeys",
        strings(o.signing_keys.iter().map(|k| k.kid())),
        strings(n.signing_keys.iter().map(|k| k.kid())),
    );
    set(
        &mut c,
        "encryptionKeys",
        strings(o.encryption_keys.iter().map(|k| k.kid())),
        strings(n.encryption_keys.iter().map(|k| k.kid())),
    );
    let types = |x: &Organisation| match &x.message_types {
        None => BTreeSet::from(["(all)".to_owned()]),
        Some(l) => strings(l),
    };
    set(&mut c, "messageTypes", types(o), types(n));
    capability_changes(&mut c, &o.capabilities(), &n.capabilities());
    c
}

fn capability_changes(c: &mut Vec<FieldChange>, o: &Capabilities, n: &Capabilities) {
    let statuses = |x: &Capabilities| match &x.statuses {
        None => BTreeSet::from(["(all)".to_owned()]),
        Some(l) => strings(l),
    };
    set(c, "capabilities.statuses", statuses(o), statuses(n));
    let transitions = |x: &Capabilities| match &x.transitions {
        None => BTreeSet::from(["(lifecycle)".to_owned()]),
        Some(l) => strings(l),
    };
    set(c, "capabilities.transitions", transitions(o), transitions(n));
    scalar(c, "capabilities.maxAttachmentBytes", &o.max_attachment_bytes, &n.max_attachment_bytes);
    scalar(c, "capabilities.maxAttachments", &o.max_attachments, &n.max_attachments);
    scalar(c, "capabilities.maxTextChars", &o.max_text_chars, &n.max_text_chars);
}

fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "(absent)".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

fn write_change(f: &mut fmt::Formatter<'_>, ch: &FieldChange) -> fmt::Result {
    if ch.old.is_some() || ch.new.is_some() {
        writeln!(f, "    {}: {} → {}", ch.field, show(ch.old.as_ref()), show(ch.new.as_ref()))
    } else {
        let mut parts: Vec<String> = ch.added.iter().map(|a| format!("+{a}")).collect();
        parts.extend(ch.removed.iter().map(|r| format!("-{r}")));
        writeln!(f, "    {}: {}", ch.field, parts.join(" "))
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "directory version {} → {}", self.from_version, self.to_version)?;
        if self.is_empty() {
            return writeln!(f, "no changes");
        }
        for ch in &self.header {
            write_change(f, ch)?;
        }
        for k in &self.organisations_added {
            writeln!(f, "+ organisation {k}")?;
        }
        for k in &self.organisations_removed {
            writeln!(f, "- organisation {k}")?;
        }
        for oc in &self.organisations_changed {
            writeln!(f, "~ organisation {}", oc.key)?;
            for ch in &oc.changes {
                write_change(f, ch)?;
            }
        }
        for a in &self.responsibilities_added {
            writeln!(f, "+ {a}")?;
        }
        for a in &self.responsibilities_removed {
            writeln!(f, "- {a}")?;
        }
        writeln!(
            f,
            "{} organisation(s) added, {} removed, {} changed; {} assignment(s) added, {} removed",
            self.organisations_added.len(),
            self.organisations_removed.len(),
            self.organisations_changed.len(),
            self.responsibilities_added.len(),
            self.responsibilities_removed.len()
        )
    }
}
