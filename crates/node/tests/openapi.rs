//! The OpenAPI document is snapshot-tested: `docs/openapi.json` is exactly what the code produces, so an API
//! change shows in review. Regenerate with `SDX_UPDATE_DOCS=1 cargo test -p sdx-node --test openapi`.

#[test]
fn openapi_document_matches_the_snapshot() {
    let doc = sdx_node::openapi::document();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every $ref points into the document.
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    for r in text.split("\"$ref\": \"").skip(1) {
        let target = r.split('"').next().unwrap();
        let name = target.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("foreign ref {target}"));
        assert!(doc["components"]["schemas"].get(name).is_some(), "dangling ref {target}");
    }
    for op in ["createCase", "listCases", "getCase", "changeCase", "listDeliveries", "retryDelivery", "receiveMessage"]
    {
        assert!(text.contains(&format!("\"operationId\": \"{op}\"")), "{op} missing");
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    if std::env::var_os("SDX_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let snapshot = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        snapshot == text,
        "docs/openapi.json is out of date: SDX_UPDATE_DOCS=1 cargo test -p sdx-node --test openapi"
    );
}
