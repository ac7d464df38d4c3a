//! The CRM graph: workspaces and their people, contacts, companies, deals, activities,
//! tasks, inquiries, orders and events, duplicate detection.
//!
//! May use: the root vocabulary and [`crate::platform`]. Nothing here knows that a
//! contact can be emailed, scored or enrolled: what reaches further (erasing every trace
//! of a contact, merging two) lives at the top of the crate, in `contact_data`.
//!
//! [`filters`], the filter language every list, segment and trigger uses, is here
//! because every record list needs it.

pub mod activities;
pub mod commerce;
pub mod companies;
pub mod contacts;
pub mod deals;
pub mod duplicates;
pub mod events;
pub mod fields;
pub mod filters;
pub mod inquiries;
pub mod tasks;
pub mod team;
pub mod workspaces;
