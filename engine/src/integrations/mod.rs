//! Telling other systems what happened, and trading data with them: outbound webhooks,
//! and records in and out in bulk (CSV import of contacts, companies and deals, as a
//! command or as jobs started over the API; CSV and JSON-lines export).
//!
//! May use: the layers below (`webhooks` reads only `platform`: the outbox the other rooms
//! write, the queue, email for admins' notices; `bulk` writes records through the CRM's
//! own upserts; `imports` keeps uploads and runs `bulk` on the queue). Nothing below uses
//! it; `worker` runs its jobs.
pub mod bulk;
pub mod imports;
pub mod webhooks;
