//! Redmine — placeholder until its implementation lands (every call answers `Unavailable`).

use serde::Deserialize;
use time::OffsetDateTime;

use crate::secret::Secret;
use crate::system::{
    FileInfo, NewComment, NewTicket, SystemError, SystemResult, Ticket, TicketChange, TicketId, TicketSystem,
    Vocabulary,
};

/// How to reach Redmine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URL.
    pub url: String,
    /// Credential.
    pub secret: Secret,
    /// The custom field that holds the SDX case id.
    pub case_field: String,
}

/// A Redmine client.
#[derive(Debug, Clone)]
pub struct Redmine {
    #[allow(dead_code)]
    config: Config,
}

impl Redmine {
    /// A client (no request is made yet).
    pub fn new(config: Config) -> SystemResult<Self> {
        Ok(Redmine { config })
    }
}

fn missing<T>() -> SystemResult<T> {
    Err(SystemError::Unavailable { system: "redmine", detail: "not implemented yet".into() })
}

impl TicketSystem for Redmine {
    fn kind(&self) -> &'static str {
        "redmine"
    }
    async fn changed_since(&self, _since: OffsetDateTime) -> SystemResult<Vec<TicketId>> {
        missing()
    }
    async fn get(&self, _id: &str) -> SystemResult<Ticket> {
        missing()
    }
    async fn find_by_field(&self, _field: &str, _value: &str) -> SystemResult<Option<TicketId>> {
        missing()
    }
    async fn create(&self, _ticket: &NewTicket) -> SystemResult<TicketId> {
        missing()
    }
    async fn update(&self, _id: &str, _change: &TicketChange) -> SystemResult<()> {
        missing()
    }
    async fn comment(&self, _id: &str, _comment: &NewComment) -> SystemResult<String> {
        missing()
    }
    async fn download(&self, _id: &str, _file: &FileInfo) -> SystemResult<Vec<u8>> {
        missing()
    }
    async fn vocabulary(&self) -> SystemResult<Vocabulary> {
        missing()
    }
}
