//! Telling other systems what happened, and trading data with them: outbound webhooks,
//! and contacts in and out in bulk (CSV import, CSV and JSON-lines export).
//!
//! May use: the layers below (`webhooks` reads only `platform`: the outbox the other rooms
//! write, the queue, email for admins' notices; `bulk` writes contacts through the CRM's
//! own upsert). Nothing below uses it; `worker` runs its jobs.
pub mod bulk;
pub mod webhooks;
