//! Rapport end to end: GraphQL over HTTP against a real server, on SQLite and on
//! PostgreSQL, one module per feature. One test binary, so the workspace links the API,
//! the engine and their dependencies into one executable instead of one per feature.

mod accounts;
mod audit;
mod authoring;
mod bulk;
mod campaigns;
mod capture;
mod consent;
mod console;
mod console_demo;
mod console_marketing;
mod demo;
mod graph;
mod graphql_http;
mod hardening;
mod imports;
mod intelligence;
mod metrics;
mod planned_queries;
mod plugin_hooks;
mod plugin_quality;
mod plugin_rules;
mod plugin_steps;
mod plugin_subjects;
mod plugins;
mod segments;
mod sequences;
mod subscriptions;
mod trainings;
mod transactional;
mod webhooks;
