//! The declarative mapping of one installation: which system value means which SDX code, in both directions,
//! which local action hands a ticket to a partner, where tickets for incoming cases go, and what a value without
//! a mapping does. Written in the connector's TOML file (see `docs/connectors.md` for a full example per
//! system) and checked twice: for consistency when loaded ([`Mapping::validate`]) and against the live system's
//! vocabulary by `sdx connector check` ([`Mapping::check`]).

use std::collections::BTreeMap;

use serde::Deserialize;

use sdx_model::{Coded, Impact, OrgKey, Priority, ResolutionCode, Status, TicketType, Urgency};

use crate::system::Vocabulary;

/// The mapping section of a connector file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Which local action hands a ticket to a partner organisation.
    pub handover: Vec<Handover>,
    /// Where tickets for cases forwarded to this organisation are created.
    pub incoming: Incoming,
    /// SDX status code → the system's status, used when SDX changes a ticket's status. Every SDX status must be
    /// mapped.
    pub status: BTreeMap<String, String>,
    /// The system's status → SDX status code, for the agents' changes. A system status absent here maps to the
    /// SDX status whose `[status]` entry names it, if exactly one does.
    #[serde(default)]
    pub status_in: BTreeMap<String, String>,
    /// Statuses the system's workflow reaches only over others: target → the statuses to set in order (ending
    /// with the target). Tried when setting the target directly is refused.
    #[serde(default)]
    pub status_paths: BTreeMap<String, Vec<String>>,
    /// SDX priority code → the system's priority (optional: a system without priorities leaves it out).
    #[serde(default)]
    pub priority: BTreeMap<String, String>,
    /// The system's priority → SDX priority code, where the inverse of `[priority]` is not unique.
    #[serde(default)]
    pub priority_in: BTreeMap<String, String>,
    /// SDX ticket type code → the system's type/tracker (optional).
    #[serde(default)]
    pub ticket_type: BTreeMap<String, String>,
    /// The system's type/tracker → SDX ticket type code.
    #[serde(default)]
    pub ticket_type_in: BTreeMap<String, String>,
    /// The online service (category) of a case by queue, type or field of its ticket, both ways: the first
    /// entry matching a handed-over ticket gives the case's service; the first entry naming an incoming case's
    /// service says where its ticket goes.
    #[serde(default)]
    pub service: Vec<ServiceMap>,
    /// Which data travel between the ticket and the case (all by default).
    #[serde(default)]
    pub travel: Travel,
    /// Values for what the ticket system does not have, used when a ticket becomes a case.
    #[serde(default)]
    pub defaults: Defaults,
    /// What happens to a value without a mapping.
    #[serde(default)]
    pub unmapped: Unmapped,
}

/// A local action that hands a ticket to a partner: the ticket is put into `queue` (or its field `field` is
/// set to `value`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handover {
    /// The partner organisation (SDX organisation key) that becomes the case's assignee.
    pub partner: String,
    /// Its display name in the case's parties.
    pub partner_name: String,
    /// A ticket moved into this queue (OTOBO, RT) / project (Redmine) is handed over.
    pub queue: Option<String>,
    /// Or: a ticket whose custom field `field` …
    pub field: Option<String>,
    /// … has this value.
    pub value: Option<String>,
}

/// Where tickets for incoming cases are created.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incoming {
    /// Queue / project of new tickets.
    pub queue: String,
    /// Type / tracker of new tickets (when the system has them and `[ticket_type]` does not say).
    pub kind: Option<String>,
}

/// One online service and where its tickets are (`[[mapping.service]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceMap {
    /// LeiKa key (14 digits) of the service.
    pub leika_key: Option<String>,
    /// OZG id of the service (e.g. `OZG-10270`).
    pub ozg_id: Option<String>,
    /// The service's name, e.g. `Wohngeld`.
    pub name: Option<String>,
    /// Tickets in this queue (OTOBO, RT) / project (Redmine) …
    pub queue: Option<String>,
    /// … or of this type (OTOBO) / tracker (Redmine) …
    pub kind: Option<String>,
    /// … or whose custom field `field` …
    pub field: Option<String>,
    /// … has this value. Incoming cases of the service get the queue, type and field value named here.
    pub value: Option<String>,
}

impl ServiceMap {
    fn matches(&self, queue: Option<&str>, kind: Option<&str>, fields: &BTreeMap<String, String>) -> bool {
        let named = self.queue.is_some() || self.kind.is_some() || self.field.is_some();
        named
            && self.queue.as_deref().is_none_or(|q| queue == Some(q))
            && self.kind.as_deref().is_none_or(|k| kind == Some(k))
            && self.field.as_ref().is_none_or(|f| fields.get(f) == self.value.as_ref())
    }

    /// The case's service reference.
    pub fn service_ref(&self) -> sdx_model::ServiceRef {
        sdx_model::ServiceRef {
            leika_key: self.leika_key.as_deref().and_then(|k| sdx_model::LeikaKey::parse(k).ok()),
            ozg_id: self.ozg_id.as_deref().and_then(|k| sdx_model::OzgId::parse(k).ok()),
            name: self.name.clone(),
        }
    }

    fn names(&self, s: &sdx_model::ServiceRef) -> bool {
        let leika = self.leika_key.as_deref().zip(s.leika_key.as_ref()).is_some_and(|(a, b)| a == b.as_str());
        let ozg = self.ozg_id.as_deref().zip(s.ozg_id.as_ref()).is_some_and(|(a, b)| a == b.as_str());
        leika || ozg
    }
}

/// Which data travel between a ticket and its case. Personal data of the citizen travel only with `requester`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Travel {
    /// The requester's name and e-mail address: into the case at the handover, into the ticket of an incoming
    /// case.
    #[serde(default = "yes")]
    pub requester: bool,
    /// Priority changes after the handover (the assignee's changes to the case; the originator's ticket follows
    /// them). The priority at the handover always travels.
    #[serde(default = "yes")]
    pub priority: bool,
    /// Files of public comments, both ways.
    #[serde(default = "yes")]
    pub files: bool,
    /// The online service, by `[[mapping.service]]`, both ways.
    #[serde(default = "yes")]
    pub service: bool,
}

impl Default for Travel {
    fn default() -> Self {
        Travel { requester: true, priority: true, files: true, service: true }
    }
}

fn yes() -> bool {
    true
}

/// Values for what the ticket system does not have.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// SDX ticket type of a new case when the ticket's type is not mapped.
    #[serde(default = "default_ticket_type")]
    pub ticket_type: String,
    /// ITIL impact of a new case (the priority follows impact × urgency).
    #[serde(default = "default_impact")]
    pub impact: String,
    /// ITIL urgency of a new case when the ticket's priority is not mapped.
    #[serde(default = "default_urgency")]
    pub urgency: String,
    /// Resolution code when an agent resolves a ticket.
    #[serde(default = "default_resolution")]
    pub resolution_code: String,
    /// Display name of this organisation in the case's parties.
    pub organisation_name: Option<String>,
    /// The service of new cases: LeiKa key (14 digits).
    pub leika_key: Option<String>,
    /// The service of new cases: name.
    pub service_name: Option<String>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            ticket_type: default_ticket_type(),
            impact: default_impact(),
            urgency: default_urgency(),
            resolution_code: default_resolution(),
            organisation_name: None,
            leika_key: None,
            service_name: None,
        }
    }
}

fn default_ticket_type() -> String {
    "incident".into()
}
fn default_impact() -> String {
    "medium".into()
}
fn default_urgency() -> String {
    "medium".into()
}
fn default_resolution() -> String {
    "fixed".into()
}

/// What a value without a mapping does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unmapped {
    /// The change is not sent; the connector reports it (health, an internal note on the ticket) and retries
    /// when the mapping or the value changes. Nothing is dropped silently.
    #[default]
    Error,
    /// The field is left out of the change (the rest is sent) and the connector reports it.
    Skip,
}

/// A mapping that does not fit together or does not fit the system.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mapping: {0}")]
pub struct MappingError(pub String);

/// A value that has no mapping, for reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no mapping for {what} `{value}`")]
pub struct Unmappable {
    /// `status`, `priority`, `type`.
    pub what: &'static str,
    /// The value.
    pub value: String,
}

/// The inverse of `out` where unique, overridden by `explicit`.
fn inverse<'a>(
    out: &'a BTreeMap<String, String>,
    explicit: &'a BTreeMap<String, String>,
    value: &str,
) -> Option<&'a str> {
    if let Some(v) = explicit.get(value) {
        return Some(v);
    }
    let mut found = out.iter().filter(|(_, sys)| sys.as_str() == value).map(|(sdx, _)| sdx.as_str());
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

impl Mapping {
    /// Check that the mapping fits together: every SDX status mapped, every code a valid SDX code, the
    /// handover partners valid organisation keys.
    pub fn validate(&self) -> Result<(), MappingError> {
        let err = |m: String| Err(MappingError(m));
        for s in Status::VALUES {
            if !self.status.contains_key(s.code()) {
                return err(format!("[status] has no entry for SDX status `{}`", s.code()));
            }
        }
        for (name, table, parse) in [
            ("[status]", &self.status, (|c: &str| Status::parse(c).is_ok()) as fn(&str) -> bool),
            ("[priority]", &self.priority, |c| Priority::parse(c).is_ok()),
            ("[ticket_type]", &self.ticket_type, |c| TicketType::parse(c).is_ok()),
        ] {
            if let Some(k) = table.keys().find(|k| !parse(k)) {
                return err(format!("{name}: `{k}` is not an SDX code"));
            }
        }
        for (name, table, parse) in [
            ("[status_in]", &self.status_in, (|c: &str| Status::parse(c).is_ok()) as fn(&str) -> bool),
            ("[priority_in]", &self.priority_in, |c| Priority::parse(c).is_ok()),
            ("[ticket_type_in]", &self.ticket_type_in, |c| TicketType::parse(c).is_ok()),
        ] {
            if let Some((k, v)) = table.iter().find(|(_, v)| !parse(v)) {
                return err(format!("{name}: `{k}` = `{v}` is not an SDX code"));
            }
        }
        for (target, path) in &self.status_paths {
            if path.last() != Some(target) {
                return err(format!("[status_paths]: the path of `{target}` must end with `{target}`"));
            }
        }
        let d = &self.defaults;
        if TicketType::parse(&d.ticket_type).is_err() {
            return err(format!("[defaults] ticket_type `{}` is not an SDX ticket type", d.ticket_type));
        }
        if Impact::parse(&d.impact).is_err() || Urgency::parse(&d.urgency).is_err() {
            return err("[defaults] impact and urgency are high, medium or low".into());
        }
        if ResolutionCode::parse(&d.resolution_code).is_err() {
            return err(format!("[defaults] resolution_code `{}` is not an SDX resolution code", d.resolution_code));
        }
        if let Some(k) = &d.leika_key
            && sdx_model::LeikaKey::parse(k).is_err()
        {
            return err(format!("[defaults] leika_key `{k}` is not a LeiKa key"));
        }
        for (i, m) in self.service.iter().enumerate() {
            let at = format!("[[service]] {}", i + 1);
            if m.leika_key.is_none() && m.ozg_id.is_none() {
                return err(format!("{at}: name the service by leika_key or ozg_id"));
            }
            if let Some(k) = &m.leika_key
                && sdx_model::LeikaKey::parse(k).is_err()
            {
                return err(format!("{at}: leika_key `{k}` is not a LeiKa key"));
            }
            if let Some(k) = &m.ozg_id
                && sdx_model::OzgId::parse(k).is_err()
            {
                return err(format!("{at}: ozg_id `{k}` is not an OZG id"));
            }
            if m.queue.is_none() && m.kind.is_none() && m.field.is_none() {
                return err(format!("{at}: name where its tickets are: queue, kind, or field and value"));
            }
            if m.field.is_some() != m.value.is_some() {
                return err(format!("{at}: field and value go together"));
            }
        }
        if self.handover.is_empty() {
            return err("[[handover]]: name at least one partner".into());
        }
        for h in &self.handover {
            if OrgKey::parse(&h.partner).is_err() {
                return err(format!("[[handover]] partner `{}` is not an SDX organisation key", h.partner));
            }
            match (&h.queue, &h.field, &h.value) {
                (Some(_), None, None) | (None, Some(_), Some(_)) => {}
                _ => return err(format!("[[handover]] {}: name either queue, or field and value", h.partner)),
            }
        }
        Ok(())
    }

    /// The SDX status of a system status.
    pub fn status_in(&self, system: &str) -> Result<Status, Unmappable> {
        inverse(&self.status, &self.status_in, system)
            .and_then(|c| Status::parse(c).ok())
            .ok_or_else(|| Unmappable { what: "status", value: system.into() })
    }

    /// The system status of an SDX status.
    pub fn status_out(&self, status: Status) -> Result<&str, Unmappable> {
        self.status
            .get(status.code())
            .map(String::as_str)
            .ok_or_else(|| Unmappable { what: "SDX status", value: status.code().into() })
    }

    /// The statuses to set, in order, to reach `target` when setting it directly is refused.
    pub fn status_path(&self, target: &str) -> Option<&[String]> {
        self.status_paths.get(target).map(Vec::as_slice)
    }

    /// The SDX priority of a system priority.
    pub fn priority_in(&self, system: &str) -> Result<Priority, Unmappable> {
        inverse(&self.priority, &self.priority_in, system)
            .and_then(|c| Priority::parse(c).ok())
            .ok_or_else(|| Unmappable { what: "priority", value: system.into() })
    }

    /// The system priority of an SDX priority, if the system has priorities.
    pub fn priority_out(&self, p: Priority) -> Option<&str> {
        self.priority.get(p.code()).map(String::as_str)
    }

    /// The SDX ticket type of a system type.
    pub fn ticket_type_in(&self, system: &str) -> Result<TicketType, Unmappable> {
        inverse(&self.ticket_type, &self.ticket_type_in, system)
            .and_then(|c| TicketType::parse(c).ok())
            .ok_or_else(|| Unmappable { what: "type", value: system.into() })
    }

    /// The system type of an SDX ticket type.
    pub fn ticket_type_out(&self, t: TicketType) -> Option<&str> {
        self.ticket_type.get(t.code()).map(String::as_str).or(self.incoming.kind.as_deref())
    }

    /// The partner a ticket is handed to, if its queue or fields say so.
    pub fn handover_for(&self, queue: Option<&str>, fields: &BTreeMap<String, String>) -> Option<&Handover> {
        self.handover.iter().find(|h| match (&h.queue, &h.field, &h.value) {
            (Some(q), _, _) => queue == Some(q.as_str()),
            (None, Some(f), Some(v)) => fields.get(f) == Some(v),
            _ => false,
        })
    }

    /// The service of a handed-over ticket: the first `[[service]]` matching its queue, type and fields.
    pub fn service_of_ticket(
        &self,
        queue: Option<&str>,
        kind: Option<&str>,
        fields: &BTreeMap<String, String>,
    ) -> Option<&ServiceMap> {
        self.service.iter().find(|m| m.matches(queue, kind, fields))
    }

    /// Where the ticket of an incoming case of service `s` goes: the first `[[service]]` naming it.
    pub fn service_for_case(&self, s: &sdx_model::ServiceRef) -> Option<&ServiceMap> {
        self.service.iter().find(|m| m.names(s))
    }

    /// Every value the mapping names that the system does not offer, and the SDX case field if it is missing
    /// (`sdx connector check`).
    pub fn check(&self, v: &Vocabulary, case_field: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let mut need = |what: &str, value: &str, offered: &[String]| {
            if !offered.iter().any(|o| o == value) {
                problems
                    .push(format!("{what} `{value}` does not exist in the system (it has: {})", offered.join(", ")));
            }
        };
        for s in self.status.values().chain(self.status_in.keys()).chain(self.status_paths.values().flatten()) {
            need("status", s, &v.statuses);
        }
        for p in self.priority.values().chain(self.priority_in.keys()) {
            need("priority", p, &v.priorities);
        }
        if !v.kinds.is_empty() {
            for k in self.ticket_type.values().chain(self.ticket_type_in.keys()).chain(self.incoming.kind.iter()) {
                need("type", k, &v.kinds);
            }
        }
        need("queue", &self.incoming.queue, &v.queues);
        for h in &self.handover {
            if let Some(q) = &h.queue {
                need("handover queue", q, &v.queues);
            }
            if let Some(f) = &h.field {
                need("handover field", f, &v.fields);
            }
        }
        for m in &self.service {
            if let Some(q) = &m.queue {
                need("service queue", q, &v.queues);
            }
            if let Some(k) = m.kind.as_ref().filter(|_| !v.kinds.is_empty()) {
                need("service type", k, &v.kinds);
            }
            if let Some(f) = &m.field {
                need("service field", f, &v.fields);
            }
        }
        need("case field", case_field, &v.fields);
        problems.sort();
        problems.dedup();
        problems
    }
}
