//! Realistic sample messages (German content) for tests, benchmarks and documentation.
//!
//! The typical case: a citizen cannot upload documents in the EfA online service "Wohngeld"; the 115 service
//! centre of a co-using state (MiLa) escalates it to the operating state (BeLa). About 2 KB as JSON, three
//! journal entries.

use crate::*;

fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).expect("sample timestamps are valid")
}
fn org(s: &str) -> OrgKey {
    OrgKey::parse(s).expect("sample keys are valid")
}
fn item(n: u8) -> ItemId {
    ItemId::parse(&format!("0b9c6e1a-4d2f-4a7b-8c3e-5f6a7b8c9d{n:02x}")).expect("valid")
}

/// Organisation key of the sample MiLa (Schleswig-Holstein 115 service centre).
pub const MILA: &str = "psw:01000115";
/// Organisation key of the sample BeLa (operator of the EfA Wohngeld service).
pub const BELA: &str = "psw:06000042";
/// Case id of the sample case.
pub const CASE_ID: &str = "3f2b8c1e-7a4d-4e9b-b1c2-d3e4f5a6b7c8";

/// The typical case, status `new`, assigned to the BeLa.
pub fn typical_case() -> Case {
    Case {
        case_id: CaseId::parse(CASE_ID).expect("valid"),
        revision: 1,
        references: vec![ExternalReference {
            owner: org(MILA),
            system: Some("Request Tracker".into()),
            id: "SH-115-2026-004711".into(),
        }],
        ticket_type: TicketType::Incident,
        status: Status::New,
        pending_reason: None,
        status_history: vec![StatusChange {
            status: Status::New,
            pending_reason: None,
            changed_at: ts("2026-11-27T09:12:00+01:00"),
            changed_by: org(MILA),
            reason: None,
        }],
        impact: Impact::Medium,
        urgency: Urgency::High,
        priority: Priority::High,
        category: Category {
            service: Some(ServiceRef {
                leika_key: Some(LeikaKey::parse("99107004017000").expect("valid")),
                ozg_id: Some(OzgId::parse("OZG-1104").expect("valid")),
                name: Some("Wohngeld (EfA)".into()),
            }),
            symptom: Some(SymptomCategory::Upload),
        },
        region: Some(Ars::parse("010020000000").expect("valid")),
        support_level: SupportLevel::SecondLevel,
        channel: Some(Channel::Phone115),
        parties: vec![
            Party {
                role: PartyRole::Mila,
                organisation: org(MILA),
                name: "115-Servicecenter Schleswig-Holstein".into(),
                contact: Some(ContactPoint {
                    name: Some("1st-Level-Support".into()),
                    email: Some("support@115.sh.example".into()),
                    phone: None,
                }),
            },
            Party {
                role: PartyRole::Bela,
                organisation: org(BELA),
                name: "Hessische Zentrale für Datenverarbeitung".into(),
                contact: Some(ContactPoint {
                    name: Some("2nd-Level Wohngeld".into()),
                    email: Some("wohngeld-support@hzd.example".into()),
                    phone: None,
                }),
            },
        ],
        originator: org(MILA),
        assignee: org(BELA),
        requester: Some(Requester {
            name: Some("Erika Mustermann".into()),
            email: Some("erika.mustermann@example.org".into()),
            phone: None,
            language: Some("de".into()),
        }),
        subject: "Wohngeld: Hochladen von Nachweisen schlägt fehl".into(),
        description: "Die Antragstellerin kann im Onlinedienst Wohngeld keine Nachweise hochladen. Nach Auswahl einer \
PDF-Datei (1,2 MB) erscheint die Meldung „Upload fehlgeschlagen – bitte später erneut versuchen“. Getestet mit \
Firefox und Edge, seit dem 26.11. reproduzierbar. Der Antrag kann ohne Nachweise nicht abgeschickt werden; die \
Frist endet am 30.11."
            .into(),
        created_at: ts("2026-11-27T09:12:00+01:00"),
        updated_at: ts("2026-11-27T09:40:00+01:00"),
        journal: vec![
            JournalEntry {
                id: item(1),
                visibility: Visibility::Public,
                author: Author { organisation: org(MILA), name: Some("115-Servicecenter".into()) },
                created_at: ts("2026-11-27T09:15:00+01:00"),
                text: "Anruf über die 115 aufgenommen. Die Bürgerin wurde über die Weiterleitung informiert.".into(),
            },
            JournalEntry {
                id: item(2),
                visibility: Visibility::Internal,
                author: Author { organisation: org(MILA), name: Some("1st-Level-Support".into()) },
                created_at: ts("2026-11-27T09:30:00+01:00"),
                text:
                    "Nachgestellt: Upload bricht bei Dateien über 1 MB mit HTTP 413 ab. Kleinere Dateien gehen durch."
                        .into(),
            },
            JournalEntry {
                id: item(3),
                visibility: Visibility::Internal,
                author: Author { organisation: org(MILA), name: Some("1st-Level-Support".into()) },
                created_at: ts("2026-11-27T09:40:00+01:00"),
                text: "Eskalation an das betreibende Land, da eine Lösung im MiLa nicht möglich ist.".into(),
            },
        ],
        attachments: vec![],
        solution: None,
        related_cases: vec![],
        service_level: Some(ServiceLevel {
            agreement: Some("EfA-Mindestanforderungen Betrieb".into()),
            response_due: Some(ts("2026-11-27T13:12:00+01:00")),
            resolution_due: Some(ts("2026-11-29T09:12:00+01:00")),
        }),
    }
}

/// A header from `author` to `reader` for the sample case.
pub fn header(message_type: MessageType, author: &str, reader: &str, sequence: u64, message_no: u8) -> Header {
    Header {
        message_id: MessageId::parse(&format!("a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c{message_no:02x}")).expect("valid"),
        message_type,
        created_at: ts("2026-11-27T09:41:00+01:00"),
        author: Participant { directory: DirectoryService::Dvdv, key: org(author), name: None },
        reader: Participant { directory: DirectoryService::Dvdv, key: org(reader), name: None },
        case_id: Some(CaseId::parse(CASE_ID).expect("valid")),
        sequence: Some(sequence),
        acknowledged_sequence: None,
        in_reply_to: None,
        schema_version: SCHEMA_VERSION.into(),
        codelist_version: codelist::CODELIST_VERSION.into(),
        product: Some("SDX".into()),
        product_vendor: Some("SDX project".into()),
        product_version: Some("0.1.0".into()),
        test: false,
    }
}

/// The typical forward from MiLa to BeLa (about 2 KB as JSON, three journal entries).
pub fn typical_forward() -> Message {
    Message {
        header: header(MessageType::Forward, MILA, BELA, 1, 1),
        body: Body::Forward(Forward {
            case: typical_case(), note: Some("Bitte um Prüfung der Upload-Grenze.".into())
        }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn typical_forward_is_valid() {
        let m = super::typical_forward();
        assert_eq!(crate::rules::check_message(&m), vec![]);
        let json = serde_json::to_string(&m).unwrap();
        assert!((1500..3500).contains(&json.len()), "{}", json.len());
    }
}
