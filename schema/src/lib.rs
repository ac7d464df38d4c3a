//! The shape of Rapport's CRM graph: one sea-orm entity per table.
//!
//! Every table but `workspaces` carries a `workspace_id`; nothing crosses workspaces.
//! Enumerated columns (lifecycle stage, deal status, ...) are stored as text and parsed
//! into domain types by `rapport-engine`. The GraphQL SDL exported from the API lives
//! beside this crate in `rapport.graphql`.

pub mod entities {
    pub mod activity;
    pub mod api_key;
    pub mod audit_event;
    pub mod bounce_event;
    pub mod campaign;
    pub mod campaign_message;
    pub mod campaign_variant;
    pub mod capture_form;
    pub mod company;
    pub mod consent_event;
    pub mod contact;
    pub mod contact_field_value;
    pub mod contact_insight;
    pub mod contact_merge;
    pub mod contact_tag;
    pub mod custom_field;
    pub mod deal;
    pub mod deal_stage_change;
    pub mod email_template;
    pub mod email_topic;
    pub mod event;
    pub mod idempotency_key;
    pub mod import;
    pub mod import_chunk;
    pub mod ingest_key;
    pub mod ingest_key_origin;
    pub mod inquiry;
    pub mod insight_change;
    pub mod lifecycle_change;
    pub mod live_notice;
    pub mod model_training;
    pub mod model_version;
    pub mod order;
    pub mod order_line;
    pub mod pipeline;
    pub mod plugin;
    pub mod plugin_action;
    pub mod plugin_component;
    pub mod plugin_event;
    pub mod plugin_record_score;
    pub mod plugin_run;
    pub mod plugin_score;
    pub mod plugin_score_history;
    pub mod plugin_shadow_score;
    pub mod plugin_version;
    pub mod product;
    pub mod schedule_slot;
    pub mod score;
    pub mod score_history;
    pub mod segment;
    pub mod sequence;
    pub mod sequence_cursor;
    pub mod sequence_enrollment;
    pub mod sequence_message;
    pub mod sequence_step_event;
    pub mod sequence_version;
    pub mod sign_in_attempt;
    pub mod stage;
    pub mod suppression;
    pub mod task;
    pub mod team;
    pub mod topic_preference;
    pub mod transactional_message;
    pub mod user;
    pub mod user_session;
    pub mod user_token;
    pub mod webhook_attempt;
    pub mod webhook_delivery;
    pub mod webhook_endpoint;
    pub mod webhook_event;
    pub mod workspace;
    pub mod workspace_secret;
}

pub use entities::*;
