//! Telling other systems what happened: outbound webhooks.
//!
//! May use: the layers below (it reads only `platform`: the outbox the other rooms write,
//! the queue, email for admins' notices). Nothing below uses it; `worker` runs its jobs.
pub mod webhooks;
