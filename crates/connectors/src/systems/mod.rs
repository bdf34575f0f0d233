//! The ticket systems SDX connects, one module each, and [`AnySystem`], the one the settings name.

pub mod otobo;
pub mod redmine;
pub mod rt;

use serde::Deserialize;
use time::OffsetDateTime;

use crate::system::{
    FileInfo, NewComment, NewTicket, SystemResult, Ticket, TicketChange, TicketId, TicketSystem, Vocabulary,
};

/// Which system a connector talks to, and how (`system = "otobo" | "rt" | "redmine"` plus that system's keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "system", rename_all = "lowercase")]
pub enum SystemConfig {
    /// OTOBO / Znuny / OTRS 6 GenericInterface.
    Otobo(otobo::Config),
    /// Request Tracker 5 REST2.
    Rt(rt::Config),
    /// Redmine 5 REST.
    Redmine(redmine::Config),
}

impl SystemConfig {
    /// The name of the custom/dynamic field that holds the SDX case id.
    pub fn case_field(&self) -> &str {
        match self {
            SystemConfig::Otobo(c) => &c.case_field,
            SystemConfig::Rt(c) => &c.case_field,
            SystemConfig::Redmine(c) => &c.case_field,
        }
    }
}

/// One of the supported systems.
#[derive(Debug, Clone)]
pub enum AnySystem {
    /// OTOBO.
    Otobo(otobo::Otobo),
    /// Request Tracker.
    Rt(rt::Rt),
    /// Redmine.
    Redmine(redmine::Redmine),
}

impl AnySystem {
    /// A client for the configured system (no request is made yet).
    pub fn new(config: &SystemConfig) -> SystemResult<Self> {
        Ok(match config {
            SystemConfig::Otobo(c) => AnySystem::Otobo(otobo::Otobo::new(c.clone())?),
            SystemConfig::Rt(c) => AnySystem::Rt(rt::Rt::new(c.clone())?),
            SystemConfig::Redmine(c) => AnySystem::Redmine(redmine::Redmine::new(c.clone())?),
        })
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnySystem::Otobo($s) => $e,
            AnySystem::Rt($s) => $e,
            AnySystem::Redmine($s) => $e,
        }
    };
}

impl TicketSystem for AnySystem {
    fn kind(&self) -> &'static str {
        each!(self, s => s.kind())
    }
    async fn changed_since(&self, since: OffsetDateTime) -> SystemResult<Vec<TicketId>> {
        each!(self, s => s.changed_since(since).await)
    }
    async fn get(&self, id: &str) -> SystemResult<Ticket> {
        each!(self, s => s.get(id).await)
    }
    async fn find_by_field(&self, field: &str, value: &str) -> SystemResult<Option<TicketId>> {
        each!(self, s => s.find_by_field(field, value).await)
    }
    async fn create(&self, ticket: &NewTicket) -> SystemResult<TicketId> {
        each!(self, s => s.create(ticket).await)
    }
    async fn update(&self, id: &str, change: &TicketChange) -> SystemResult<()> {
        each!(self, s => s.update(id, change).await)
    }
    async fn comment(&self, id: &str, comment: &NewComment) -> SystemResult<String> {
        each!(self, s => s.comment(id, comment).await)
    }
    async fn download(&self, id: &str, file: &FileInfo) -> SystemResult<Vec<u8>> {
        each!(self, s => s.download(id, file).await)
    }
    async fn vocabulary(&self) -> SystemResult<Vocabulary> {
        each!(self, s => s.vocabulary().await)
    }
}
