//! Typed custom fields: a workspace declares what a contact attribute holds (a number,
//! a date, a yes/no, one option or several), and each contact's values are kept in typed
//! columns beside the JSON, so filters compare numbers as numbers with an index.
crate::script_migration!("m0014_custom_fields");

const UP: &str = r#"
CREATE TABLE custom_fields (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    key {text} NOT NULL,
    label {text} NOT NULL,
    kind {text} NOT NULL,
    options {json} NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE UNIQUE INDEX custom_fields_ws_key ON custom_fields (workspace_id, key);

CREATE TABLE contact_field_values (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    field_id BIGINT NOT NULL REFERENCES custom_fields(id) ON DELETE CASCADE,
    number_value DOUBLE PRECISION,
    text_value {text}
);
CREATE INDEX contact_field_values_number ON contact_field_values (field_id, number_value, contact_id);
CREATE INDEX contact_field_values_text ON contact_field_values (field_id, text_value, contact_id);
CREATE INDEX contact_field_values_contact ON contact_field_values (contact_id)
"#;

const DOWN: &str = r#"
DROP TABLE contact_field_values;
DROP TABLE custom_fields
"#;
