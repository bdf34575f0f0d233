//! `docs/model.md` and `docs/codelists.md` contain the tables generated from the code, unchanged.
//! Regenerate with `SDX_UPDATE_DOCS=1 cargo test -p sdx-codec --test docs`.

use std::path::Path;

use sdx_codec::docs;

fn check(file: &str, generated: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs").join(file);
    let current = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let fresh = docs::splice(&current, generated).unwrap_or_else(|| panic!("{file} lacks the generated-part markers"));
    if std::env::var_os("SDX_UPDATE_DOCS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    } else {
        assert!(current == fresh, "{file} is out of date: run SDX_UPDATE_DOCS=1 cargo test -p sdx-codec --test docs");
    }
}

#[test]
fn model_tables_are_current() {
    check("model.md", &docs::model_tables());
}

#[test]
fn codelist_tables_are_current() {
    check("codelists.md", &docs::codelist_tables());
}
