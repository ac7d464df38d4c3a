//! The CRM graph: workspaces, people, companies, pipelines, deals, engagement and commerce.

crate::script_migration!("m0001_crm_graph");

// Every list the API offers is filtered by workspace first and then sorted or keyed by
// one column, so the indexes lead with workspace_id and end with the sort column and id
// (the keyset tiebreaker). Foreign keys that nested connections batch on are indexed too.
const UP: &str = r#"
CREATE TABLE workspaces (
    id {pk},
    name {text} NOT NULL,
    created_at {ts} NOT NULL
);

CREATE TABLE teams (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name {text} NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts}
);
CREATE INDEX teams_ws_name ON teams (workspace_id, name, id);

CREATE TABLE users (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    team_id BIGINT REFERENCES teams(id) ON DELETE SET NULL,
    name {text} NOT NULL,
    email {text} NOT NULL,
    role {text} NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts}
);
CREATE UNIQUE INDEX users_ws_email ON users (workspace_id, email);
CREATE INDEX users_ws_name ON users (workspace_id, name, id);
CREATE INDEX users_team ON users (team_id);

CREATE TABLE api_keys (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name {text} NOT NULL,
    prefix {text} NOT NULL UNIQUE,
    hash {text} NOT NULL,
    scopes {text} NOT NULL,
    created_at {ts} NOT NULL,
    last_used_at {ts},
    revoked_at {ts}
);
CREATE INDEX api_keys_ws ON api_keys (workspace_id, id);

CREATE TABLE companies (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name {text} NOT NULL,
    domain {text},
    industry {text},
    size INTEGER,
    country {text},
    owner_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts}
);
CREATE UNIQUE INDEX companies_ws_domain ON companies (workspace_id, domain);
CREATE INDEX companies_ws_name ON companies (workspace_id, name, id);
CREATE INDEX companies_ws_created ON companies (workspace_id, created_at, id);
CREATE INDEX companies_ws_updated ON companies (workspace_id, updated_at, id);
CREATE INDEX companies_ws_industry ON companies (workspace_id, industry);
CREATE INDEX companies_ws_country ON companies (workspace_id, country);
CREATE INDEX companies_owner ON companies (owner_id);

CREATE TABLE contacts (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    first_name {text} NOT NULL,
    last_name {text} NOT NULL,
    email {text},
    other_emails {json} NOT NULL,
    phone {text},
    phone_normalized {text},
    company_id BIGINT REFERENCES companies(id) ON DELETE SET NULL,
    owner_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    lifecycle_stage {text} NOT NULL,
    source {text},
    tags {json} NOT NULL,
    attributes {json} NOT NULL,
    timezone {text},
    merged_into_id BIGINT REFERENCES contacts(id) ON DELETE SET NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts}
);
CREATE UNIQUE INDEX contacts_ws_email ON contacts (workspace_id, email);
CREATE INDEX contacts_ws_last_name ON contacts (workspace_id, last_name, id);
CREATE INDEX contacts_ws_first_name ON contacts (workspace_id, first_name, id);
CREATE INDEX contacts_ws_created ON contacts (workspace_id, created_at, id);
CREATE INDEX contacts_ws_updated ON contacts (workspace_id, updated_at, id);
CREATE INDEX contacts_ws_stage ON contacts (workspace_id, lifecycle_stage, id);
CREATE INDEX contacts_ws_phone ON contacts (workspace_id, phone_normalized);
CREATE INDEX contacts_ws_source ON contacts (workspace_id, source);
CREATE INDEX contacts_company ON contacts (company_id);
CREATE INDEX contacts_owner ON contacts (owner_id);

CREATE TABLE contact_tags (
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    tag {text} NOT NULL,
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    PRIMARY KEY (contact_id, tag)
);
CREATE INDEX contact_tags_ws_tag ON contact_tags (workspace_id, tag, contact_id);

CREATE TABLE contact_merges (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    survivor_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    merged_id BIGINT NOT NULL,
    merged_snapshot {json} NOT NULL,
    moved {json} NOT NULL,
    merged_at {ts} NOT NULL,
    merged_by_key_id BIGINT REFERENCES api_keys(id) ON DELETE SET NULL
);
CREATE INDEX contact_merges_survivor ON contact_merges (survivor_id);

CREATE TABLE pipelines (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name {text} NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts}
);
CREATE INDEX pipelines_ws_name ON pipelines (workspace_id, name, id);

CREATE TABLE stages (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    pipeline_id BIGINT NOT NULL REFERENCES pipelines(id) ON DELETE CASCADE,
    name {text} NOT NULL,
    position INTEGER NOT NULL,
    win_probability INTEGER NOT NULL,
    is_won BOOLEAN NOT NULL,
    is_lost BOOLEAN NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE INDEX stages_pipeline ON stages (pipeline_id, position);

CREATE TABLE deals (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name {text} NOT NULL,
    contact_id BIGINT REFERENCES contacts(id) ON DELETE SET NULL,
    company_id BIGINT REFERENCES companies(id) ON DELETE SET NULL,
    pipeline_id BIGINT NOT NULL REFERENCES pipelines(id),
    stage_id BIGINT NOT NULL REFERENCES stages(id),
    amount_minor BIGINT NOT NULL,
    currency {text} NOT NULL,
    expected_close_date DATE,
    owner_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    status {text} NOT NULL,
    lost_reason {text},
    competitor {text},
    closed_at {ts},
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts}
);
CREATE INDEX deals_ws_created ON deals (workspace_id, created_at, id);
CREATE INDEX deals_ws_updated ON deals (workspace_id, updated_at, id);
CREATE INDEX deals_ws_amount ON deals (workspace_id, amount_minor, id);
CREATE INDEX deals_ws_name ON deals (workspace_id, name, id);
CREATE INDEX deals_ws_status ON deals (workspace_id, status, id);
CREATE INDEX deals_ws_close ON deals (workspace_id, expected_close_date);
CREATE INDEX deals_contact ON deals (contact_id, status);
CREATE INDEX deals_company ON deals (company_id, status);
CREATE INDEX deals_pipeline_stage ON deals (pipeline_id, stage_id);
CREATE INDEX deals_owner ON deals (owner_id);

CREATE TABLE deal_stage_history (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    deal_id BIGINT NOT NULL REFERENCES deals(id) ON DELETE CASCADE,
    from_stage_id BIGINT REFERENCES stages(id),
    to_stage_id BIGINT NOT NULL REFERENCES stages(id),
    moved_at {ts} NOT NULL,
    moved_by_key_id BIGINT REFERENCES api_keys(id) ON DELETE SET NULL,
    moved_by_user_id BIGINT REFERENCES users(id) ON DELETE SET NULL
);
CREATE INDEX deal_stage_history_deal ON deal_stage_history (deal_id, moved_at, id);
CREATE INDEX deal_stage_history_ws ON deal_stage_history (workspace_id, moved_at, id);

CREATE TABLE activities (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    kind {text} NOT NULL,
    direction {text},
    subject {text},
    body {text},
    occurred_at {ts} NOT NULL,
    contact_id BIGINT REFERENCES contacts(id) ON DELETE SET NULL,
    deal_id BIGINT REFERENCES deals(id) ON DELETE SET NULL,
    author_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts}
);
CREATE INDEX activities_ws_occurred ON activities (workspace_id, occurred_at, id);
CREATE INDEX activities_ws_created ON activities (workspace_id, created_at, id);
CREATE INDEX activities_ws_kind ON activities (workspace_id, kind);
CREATE INDEX activities_contact ON activities (contact_id, occurred_at, id);
CREATE INDEX activities_deal ON activities (deal_id, occurred_at, id);
CREATE INDEX activities_author ON activities (author_id);

CREATE TABLE tasks (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    title {text} NOT NULL,
    due_at {ts},
    status {text} NOT NULL,
    assignee_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    contact_id BIGINT REFERENCES contacts(id) ON DELETE SET NULL,
    deal_id BIGINT REFERENCES deals(id) ON DELETE SET NULL,
    completed_at {ts},
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts}
);
CREATE INDEX tasks_ws_created ON tasks (workspace_id, created_at, id);
CREATE INDEX tasks_ws_status ON tasks (workspace_id, status, id);
CREATE INDEX tasks_ws_due ON tasks (workspace_id, due_at);
CREATE INDEX tasks_contact ON tasks (contact_id, created_at, id);
CREATE INDEX tasks_deal ON tasks (deal_id);
CREATE INDEX tasks_assignee ON tasks (assignee_id, status);

CREATE TABLE inquiries (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    contact_id BIGINT REFERENCES contacts(id) ON DELETE SET NULL,
    subject {text} NOT NULL,
    channel {text} NOT NULL,
    status {text} NOT NULL,
    priority {text} NOT NULL,
    opened_at {ts} NOT NULL,
    closed_at {ts},
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts}
);
CREATE INDEX inquiries_ws_opened ON inquiries (workspace_id, opened_at, id);
CREATE INDEX inquiries_ws_created ON inquiries (workspace_id, created_at, id);
CREATE INDEX inquiries_ws_status ON inquiries (workspace_id, status, id);
CREATE INDEX inquiries_contact ON inquiries (contact_id, opened_at, id);

CREATE TABLE products (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    sku {text} NOT NULL,
    name {text} NOT NULL,
    category {text},
    price_minor BIGINT NOT NULL,
    currency {text} NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts}
);
CREATE UNIQUE INDEX products_ws_sku ON products (workspace_id, sku);
CREATE INDEX products_ws_name ON products (workspace_id, name, id);
CREATE INDEX products_ws_created ON products (workspace_id, created_at, id);
CREATE INDEX products_ws_category ON products (workspace_id, category);

CREATE TABLE orders (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    placed_at {ts} NOT NULL,
    status {text} NOT NULL,
    currency {text} NOT NULL,
    total_minor BIGINT NOT NULL,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL,
    deleted_at {ts}
);
CREATE INDEX orders_ws_placed ON orders (workspace_id, placed_at, id);
CREATE INDEX orders_ws_created ON orders (workspace_id, created_at, id);
CREATE INDEX orders_ws_total ON orders (workspace_id, total_minor, id);
CREATE INDEX orders_ws_status ON orders (workspace_id, status);
CREATE INDEX orders_contact ON orders (contact_id, placed_at, id);

CREATE TABLE order_lines (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    order_id BIGINT NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    product_id BIGINT REFERENCES products(id) ON DELETE SET NULL,
    quantity INTEGER NOT NULL,
    unit_price_minor BIGINT NOT NULL
);
CREATE INDEX order_lines_order ON order_lines (order_id, id);
CREATE INDEX order_lines_product ON order_lines (product_id);

CREATE TABLE events (
    id {pk},
    workspace_id BIGINT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    event_type {text} NOT NULL,
    properties {json} NOT NULL,
    occurred_at {ts} NOT NULL
);
CREATE INDEX events_ws_occurred ON events (workspace_id, occurred_at, id);
CREATE INDEX events_ws_type ON events (workspace_id, event_type, occurred_at);
CREATE INDEX events_contact ON events (contact_id, occurred_at, id)
"#;

const DOWN: &str = r#"
DROP TABLE events;
DROP TABLE order_lines;
DROP TABLE orders;
DROP TABLE products;
DROP TABLE inquiries;
DROP TABLE tasks;
DROP TABLE activities;
DROP TABLE deal_stage_history;
DROP TABLE deals;
DROP TABLE stages;
DROP TABLE pipelines;
DROP TABLE contact_merges;
DROP TABLE contact_tags;
DROP TABLE contacts;
DROP TABLE companies;
DROP TABLE api_keys;
DROP TABLE users;
DROP TABLE teams;
DROP TABLE workspaces
"#;
