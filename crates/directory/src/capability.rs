//! Checking a case against a partner's published [`Capabilities`] before it is sent: a status its workflow cannot
//! represent or reach, an attachment over its limit, a text longer than its fields take. The sending node refuses
//! such a change at the source with the reason ([`Unsupported`]) instead of letting it end as a dead letter or a
//! refusal at the partner later (issue 9, `docs/routing.md`).

use std::fmt;

use sdx_model::{Case, ErrorCode};

use crate::document::Capabilities;

/// Why a partner cannot take a case as it would be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The SDX error code that fits: `invalidTransition` for statuses and status changes, `tooLarge` for limits.
    pub code: ErrorCode,
    /// What exactly, with the JSON pointer into the case.
    pub detail: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for Unsupported {}

fn unsupported(code: ErrorCode, detail: String) -> Unsupported {
    Unsupported { code, detail }
}

impl Capabilities {
    /// Whether the partner can take `after`, the case as the change leaves it (`before`: the case as the partner
    /// last had it; `None` for a forward, which it receives whole). Checked: the current status, every status
    /// change the message adds (a forward: the status it arrives in only), the number of attachments, the size
    /// of each attachment it has not had yet, and the length of the description, the solution and each journal
    /// entry it has not had yet. The first finding is returned.
    ///
    /// # Errors
    /// [`Unsupported`] with the finding.
    pub fn check(&self, before: Option<&Case>, after: &Case) -> Result<(), Unsupported> {
        if !self.supports_status(after.status) {
            return Err(unsupported(
                ErrorCode::InvalidTransition,
                format!("/status: the partner's workflow has no status `{}`", after.status),
            ));
        }
        if let Some(before) = before {
            let known = before.status_history.len();
            let mut from = before.status;
            for (i, change) in after.status_history.iter().enumerate().skip(known) {
                if change.status != from && !self.supports_transition(from, change.status) {
                    return Err(unsupported(
                        ErrorCode::InvalidTransition,
                        format!(
                            "/statusHistory/{i}: the partner's workflow cannot go from `{from}` to `{}`",
                            change.status
                        ),
                    ));
                }
                from = change.status;
            }
        }
        if let Some(max) = self.max_attachments
            && after.attachments.len() as u64 > max
        {
            return Err(unsupported(
                ErrorCode::TooLarge,
                format!("/attachments: {} attachments, the partner takes at most {max}", after.attachments.len()),
            ));
        }
        let had_attachments = before.map_or(0, |b| b.attachments.len());
        if let Some(max) = self.max_attachment_bytes {
            for (i, a) in after.attachments.iter().enumerate().skip(had_attachments) {
                if a.size > max {
                    return Err(unsupported(
                        ErrorCode::TooLarge,
                        format!("/attachments/{i}: {} bytes, the partner takes at most {max} per attachment", a.size),
                    ));
                }
            }
        }
        if let Some(max) = self.max_text_chars {
            let long = |text: &str| text.chars().count() as u64 > max;
            let mut texts: Vec<(String, &str)> = Vec::new();
            if before.is_none_or(|b| b.description != after.description) {
                texts.push(("/description".into(), &after.description));
            }
            if let Some(s) = &after.solution
                && before.and_then(|b| b.solution.as_ref()).is_none_or(|o| o.text != s.text)
            {
                texts.push(("/solution/text".into(), &s.text));
            }
            let had_entries = before.map_or(0, |b| b.journal.len());
            for (i, e) in after.journal.iter().enumerate().skip(had_entries) {
                texts.push((format!("/journal/{i}/text"), &e.text));
            }
            if let Some((pointer, text)) = texts.into_iter().find(|(_, t)| long(t)) {
                return Err(unsupported(
                    ErrorCode::TooLarge,
                    format!("{pointer}: {} characters, the partner's fields take at most {max}", text.chars().count()),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sdx_model::{Status, sample};

    use super::*;
    use crate::document::Transition;

    #[test]
    fn everything_passes_without_published_limits() {
        let case = sample::typical_case();
        assert_eq!(Capabilities::default().check(None, &case), Ok(()));
        assert_eq!(Capabilities::default().check(Some(&case), &case), Ok(()));
    }

    #[test]
    fn a_status_the_partner_has_not_is_refused() {
        let case = sample::typical_case();
        let caps = Capabilities { statuses: Some(vec![Status::Closed]), ..Capabilities::default() };
        let e = caps.check(None, &case).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidTransition, "{e}");
        assert!(e.detail.starts_with("/status:"), "{e}");
    }

    #[test]
    fn a_status_change_the_workflow_cannot_take_is_refused_and_one_it_can_passes() {
        let before = sample::typical_case();
        let mut after = before.clone();
        let mut change = after.status_history.last().unwrap().clone();
        change.status = Status::InProgress;
        change.pending_reason = None;
        after.status_history.push(change);
        after.status = Status::InProgress;
        after.pending_reason = None;
        let from = before.status;
        let narrow = Capabilities {
            transitions: Some(vec![Transition { from: Status::InProgress, to: Status::Resolved }]),
            ..Capabilities::default()
        };
        let e = narrow.check(Some(&before), &after).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidTransition);
        assert!(e.detail.contains(&format!("from `{from}` to `inProgress`")), "{e}");
        let wide = Capabilities {
            transitions: Some(vec![Transition { from, to: Status::InProgress }]),
            ..Capabilities::default()
        };
        assert_eq!(wide.check(Some(&before), &after), Ok(()));
    }

    #[test]
    fn limits_apply_to_what_the_partner_has_not_had_yet() {
        let before = sample::typical_case();
        let mut after = before.clone();
        let mut entry = sample::typical_case().journal.first().cloned().expect("the sample has a journal entry");
        entry.text = "x".repeat(50);
        after.journal.push(entry);
        let short = Capabilities { max_text_chars: Some(40), ..Capabilities::default() };
        let e = short.check(Some(&before), &after).unwrap_err();
        assert_eq!(e.code, ErrorCode::TooLarge);
        assert!(e.detail.starts_with(&format!("/journal/{}/text: 50 characters", before.journal.len())), "{e}");
        // What it had already is not checked again.
        let longest_before = before.journal.iter().map(|j| j.text.chars().count()).max().unwrap_or(0) as u64;
        let desc = before.description.chars().count() as u64;
        let loose = Capabilities { max_text_chars: Some(longest_before.max(desc).max(50)), ..Capabilities::default() };
        assert_eq!(loose.check(Some(&before), &after), Ok(()));
        let tiny = Capabilities { max_attachment_bytes: Some(0), ..Capabilities::default() };
        if before.attachments.is_empty() {
            assert_eq!(tiny.check(Some(&before), &after), Ok(()));
        } else {
            assert_eq!(tiny.check(None, &before).unwrap_err().code, ErrorCode::TooLarge);
            assert_eq!(tiny.check(Some(&before), &before), Ok(()), "attachments it has are not checked again");
        }
    }
}
