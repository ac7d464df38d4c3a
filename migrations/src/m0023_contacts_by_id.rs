//! Contacts in id order within a workspace: an export (and any keyset walk by id) reads a
//! page past the last id; without this index SQLite picks another workspace index and
//! sorts the whole workspace for every page (5 s a page at a million contacts).
crate::script_migration!("m0023_contacts_by_id");

const UP: &str = r#"
CREATE INDEX contacts_ws_id ON contacts (workspace_id, id)
"#;

const DOWN: &str = r#"
DROP INDEX contacts_ws_id
"#;
