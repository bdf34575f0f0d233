//! The example connector files (one per system, shown in docs/connectors.md) parse, and their mappings fit
//! together.

use sdx_connectors::config::ConnectorFile;

#[test]
fn every_example_connector_file_is_valid_and_in_the_docs() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let docs = std::fs::read_to_string(dir.join("../../../docs/connectors.md")).unwrap_or_default();
    for system in ["otobo", "rt", "redmine"] {
        let path = dir.join(format!("{system}.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        let file = ConnectorFile::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(file.name, system);
        assert!(docs.contains(text.trim()), "docs/connectors.md shows {} as it is", path.display());
    }
}

#[test]
fn broken_mappings_are_refused_with_the_reason() {
    let text =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/otobo.toml")).unwrap();
    for (from, to, reason) in [
        ("reopened = \"open\"\n", "", "no entry for SDX status `reopened`"),
        ("queue = \"SDX\"", "", "either queue, or field and value"),
        ("partner = \"psw:06000042\"", "partner = \"hessen\"", "not an SDX organisation key"),
        ("\"open\" = \"inProgress\"", "\"open\" = \"offen\"", "is not an SDX code"),
        ("name = \"otobo\"", "name = \"mit leerzeichen\"", "1 to 64"),
        ("poll_interval_ms = 1000", "poll_interval_ms = 10", "poll_interval_ms"),
        ("unmapped = \"error\"", "unmapped = \"drop\"", "unknown variant"),
        ("leika_key = \"99107004017000\"", "leika_key = \"991070\"", "is not a LeiKa key"),
        ("kind = \"Service Request\"", "", "name where its tickets are"),
        ("service = true", "service = \"ja\"", "invalid type"),
    ] {
        assert!(text.contains(from), "{from}");
        let err = ConnectorFile::parse(&text.replacen(from, to, 1)).unwrap_err();
        assert!(err.contains(reason), "{from} → {to}: {err}");
    }
}
