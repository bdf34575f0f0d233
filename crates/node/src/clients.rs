//! Several ticket systems inside one organisation (use case 2.3): who among the local API's clients sees and
//! changes which case.
//!
//! Every client of the local API (`[[api.clients]]`) is either an `all`-cases client (operators, or the one
//! ticket system of an organisation — the default) or an `own`-cases client: one of several ticket systems of the
//! organisation behind one node, each case owned by one of them. A case's owner is kept with the case (never
//! sent) and set
//! - when a client with `cases = "own"` creates (forwards) it: that client; a case it escalates gives the child
//!   case the same owner;
//! - when a new case arrives from a partner: the client whose `services` names the case's service (LeiKa key or
//!   OZG id), else the client with `default_owner = true`, else nobody ([`Owners::for_incoming`]);
//! - by an operator (`PUT /api/v1/cases/{id}/owner`), e.g. for a case nobody took.
//!
//! An `own`-cases client sees only the cases it owns (list, single case, change feed) and changes only those; it
//! gets 403 `notPermitted` for the others and for the operators' routes (outbox, blocked cases, owners), and its
//! idempotency keys are its own ([`Caller::idempotency_key`]). The store keeps the owner in `cases.owner`
//! ([`sdx_store::CaseRecord`]).

use std::collections::HashMap;

use sdx_model::Case;

use crate::settings::{ApiClient, CaseScope};

/// The client calling the local API, as its bearer token identified it (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The client's name (`[[api.clients]] name`).
    pub name: String,
    /// Which cases it sees and changes.
    pub scope: CaseScope,
}

impl Caller {
    /// The owner name a case must have for this caller to see or change it: `None` for an all-cases client.
    pub fn restricted_to(&self) -> Option<&str> {
        (self.scope == CaseScope::Own).then_some(self.name.as_str())
    }

    /// Whether this caller may see (and, through the engine's checks, change) a case with this owner.
    pub fn may_see(&self, owner: Option<&str>) -> bool {
        self.restricted_to().is_none_or(|me| owner == Some(me))
    }

    /// The idempotency key as stored. A client limited to its own cases has keys of its own: its key and its
    /// name, so two ticket systems' keys never meet (a key is 1 to 200 visible ASCII characters without spaces,
    /// so the first space separates them, and no bare key has one). The all-cases clients share the bare keys, as
    /// before there were owners — so a change sent before an upgrade and repeated after it is still found.
    pub fn idempotency_key(&self, key: &str) -> String {
        match self.scope {
            CaseScope::Own => format!("{key} {}", self.name),
            CaseScope::All => key.to_string(),
        }
    }
}

/// Who owns a case that arrives from a partner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owners {
    /// Service (LeiKa key or OZG id, as written) → client.
    by_service: HashMap<String, String>,
    /// The client of the cases no `services` entry names.
    default: Option<String>,
}

/// Why the clients' ownership settings cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OwnersError {
    /// A name is empty, too long, has control characters or is used twice.
    #[error("api client name {0:?}: 1 to 64 characters without control characters, unique")]
    BadName(String),
    /// `services` or `default_owner` on an all-cases client.
    #[error("api client {0}: services and default_owner need cases = \"own\"")]
    NotOwnScope(String),
    /// A service entry is neither a LeiKa key nor an OZG id.
    #[error("api client {client}: {service:?} is neither a LeiKa key (14 digits) nor an OZG id")]
    BadService {
        /// The client.
        client: String,
        /// Its entry.
        service: String,
    },
    /// Two clients name one service.
    #[error("service {service} is named by api clients {first} and {second}; each service belongs to one")]
    ServiceTwice {
        /// The service.
        service: String,
        /// The first client naming it.
        first: String,
        /// The second.
        second: String,
    },
    /// Two clients are `default_owner`.
    #[error("api clients {first} and {second} are both default_owner; at most one is")]
    DefaultTwice {
        /// The first.
        first: String,
        /// The second.
        second: String,
    },
}

impl Owners {
    /// The rules of these clients, checked: names unique; `services` and `default_owner` only on `own`-cases
    /// clients; each service at one client; one default owner at most.
    pub fn from_clients(clients: &[ApiClient]) -> Result<Owners, OwnersError> {
        let mut owners = Owners::default();
        let mut names: Vec<&str> = Vec::new();
        for c in clients {
            let name_ok = !c.name.is_empty() && c.name.chars().count() <= 64 && !c.name.chars().any(char::is_control);
            if !name_ok || names.contains(&c.name.as_str()) {
                return Err(OwnersError::BadName(c.name.clone()));
            }
            names.push(&c.name);
            if c.cases != CaseScope::Own {
                if !c.services.is_empty() || c.default_owner {
                    return Err(OwnersError::NotOwnScope(c.name.clone()));
                }
                continue;
            }
            for s in &c.services {
                let known = sdx_model::LeikaKey::parse(s).is_ok() || sdx_model::OzgId::parse(s).is_ok();
                if !known {
                    return Err(OwnersError::BadService { client: c.name.clone(), service: s.clone() });
                }
                if let Some(first) = owners.by_service.insert(s.clone(), c.name.clone()) {
                    return Err(OwnersError::ServiceTwice { service: s.clone(), first, second: c.name.clone() });
                }
            }
            if c.default_owner
                && let Some(first) = owners.default.replace(c.name.clone())
            {
                return Err(OwnersError::DefaultTwice { first, second: c.name.clone() });
            }
        }
        Ok(owners)
    }

    /// The owner of a case that arrives from a partner, and the rule that chose it: the client naming its
    /// service (LeiKa key first, then OZG id), else the default owner, else nobody.
    pub fn for_incoming(&self, case: &Case) -> Option<(String, String)> {
        let service = case.category.service.as_ref();
        let keys = [
            service.and_then(|s| s.leika_key.as_ref()).map(|k| k.to_string()),
            service.and_then(|s| s.ozg_id.as_ref()).map(|k| k.to_string()),
        ];
        for key in keys.into_iter().flatten() {
            if let Some(owner) = self.by_service.get(&key) {
                return Some((owner.clone(), format!("service {key}")));
            }
        }
        self.default.clone().map(|d| (d, "default owner".to_string()))
    }

    /// Whether these rules give any case an owner (only then does receiving a case look at them).
    pub fn is_empty(&self) -> bool {
        self.by_service.is_empty() && self.default.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(name: &str, services: &[&str], default_owner: bool) -> ApiClient {
        ApiClient {
            cases: CaseScope::Own,
            services: services.iter().map(|s| s.to_string()).collect(),
            default_owner,
            ..ApiClient::all_cases(name, "0".repeat(64))
        }
    }

    #[test]
    fn incoming_cases_go_to_the_client_of_their_service_else_the_default() {
        let o = Owners::from_clients(&[
            ApiClient::all_cases("operator", "0".repeat(64)),
            own("otobo", &["99123456789000"], false),
            own("redmine", &[], true),
        ])
        .unwrap();
        let mut case = sdx_model::sample::typical_case();
        case.category.service = Some(sdx_model::ServiceRef {
            leika_key: Some("99123456789000".parse().unwrap()),
            ozg_id: None,
            name: None,
        });
        assert_eq!(o.for_incoming(&case), Some(("otobo".into(), "service 99123456789000".into())));
        case.category.service = None;
        assert_eq!(o.for_incoming(&case), Some(("redmine".into(), "default owner".into())));
        let none = Owners::from_clients(&[own("otobo", &["99123456789000"], false)]).unwrap();
        assert_eq!(none.for_incoming(&case), None);
    }

    #[test]
    fn contradictory_settings_are_refused() {
        let all_with_services = ApiClient { services: vec!["99123456789000".into()], ..ApiClient::all_cases("a", "") };
        assert_eq!(Owners::from_clients(&[all_with_services]), Err(OwnersError::NotOwnScope("a".into())));
        let twice = [own("a", &["99123456789000"], false), own("b", &["99123456789000"], false)];
        assert!(matches!(Owners::from_clients(&twice), Err(OwnersError::ServiceTwice { .. })));
        let defaults = [own("a", &[], true), own("b", &[], true)];
        assert!(matches!(Owners::from_clients(&defaults), Err(OwnersError::DefaultTwice { .. })));
        assert!(matches!(
            Owners::from_clients(&[own("a", &["Wohngeld 1"], false)]),
            Err(OwnersError::BadService { .. })
        ));
        let same_name = [own("a", &[], false), ApiClient::all_cases("a", "")];
        assert_eq!(Owners::from_clients(&same_name), Err(OwnersError::BadName("a".into())));
        assert_eq!(Owners::from_clients(&[ApiClient::all_cases("", "")]), Err(OwnersError::BadName(String::new())));
    }

    #[test]
    fn an_own_cases_caller_sees_its_cases_only_and_keeps_its_keys_apart() {
        let me = Caller { name: "otobo".into(), scope: CaseScope::Own };
        assert!(me.may_see(Some("otobo")));
        assert!(!me.may_see(Some("redmine")));
        assert!(!me.may_see(None));
        let operator = Caller { name: "op".into(), scope: CaseScope::All };
        assert!(operator.may_see(None) && operator.may_see(Some("otobo")));
        let other = Caller { name: "redmine".into(), scope: CaseScope::Own };
        assert_ne!(me.idempotency_key("k1"), other.idempotency_key("k1"));
        assert_ne!(me.idempotency_key("k1"), operator.idempotency_key("k1"));
        assert_eq!(operator.idempotency_key("k1"), "k1", "the keys stored before there were owners");
    }
}
