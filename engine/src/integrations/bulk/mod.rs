//! Records in and out in bulk: a CSV import of contacts, companies or deals that streams
//! its file (any size, a batch in memory at a time), checks every row as the API would,
//! upserts by the kind's key (email, domain, external id) and writes the rows it refused
//! to a reject file with the reason ([`import`]); and an export of the records a filter
//! picks, a page at a time, as CSV or JSON lines ([`export`]).

pub mod export;
pub mod import;
mod rows;

pub use export::{Format, export_header, export_page};
pub use import::{Report, import};

use crate::error::{EngineError, Result};

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// People, upserted by email.
    Contacts,
    /// Accounts, upserted by domain.
    Companies,
    /// Deals, upserted by external id (a row without one is a new deal).
    Deals,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 3] = [Kind::Contacts, Kind::Companies, Kind::Deals];

    /// As stored and named in URLs: `contacts`, `companies`, `deals`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Contacts => "contacts",
            Kind::Companies => "companies",
            Kind::Deals => "deals",
        }
    }

    /// Parses a kind's name; the error names `field`.
    pub fn parse(field: &str, text: &str) -> Result<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| {
                EngineError::invalid(
                    field,
                    format!("{text:?} is not contacts, companies or deals"),
                )
            })
    }

    /// The fields a column may fill, each with the header spellings that suggest it
    /// (lower case, letters and digits only).
    pub fn fields(self) -> &'static [(&'static str, &'static [&'static str])] {
        match self {
            Kind::Contacts => &[
                ("email", &["email", "emailaddress", "mail"]),
                (
                    "firstName",
                    &["firstname", "givenname", "first", "forename"],
                ),
                ("lastName", &["lastname", "surname", "familyname", "last"]),
                (
                    "phone",
                    &["phone", "phonenumber", "mobile", "telephone", "tel"],
                ),
                ("source", &["source", "leadsource"]),
                ("timezone", &["timezone", "tz"]),
                ("lifecycleStage", &["lifecyclestage", "stage", "lifecycle"]),
                ("tags", &["tags", "tag", "labels"]),
            ],
            Kind::Companies => &[
                (
                    "name",
                    &[
                        "name",
                        "company",
                        "companyname",
                        "account",
                        "accountname",
                        "organization",
                    ],
                ),
                (
                    "domain",
                    &["domain", "website", "url", "web", "companydomain"],
                ),
                ("industry", &["industry", "sector"]),
                ("size", &["size", "employees", "headcount", "companysize"]),
                ("country", &["country", "countrycode"]),
            ],
            Kind::Deals => &[
                ("externalId", &["externalid", "id", "dealid", "extid"]),
                ("name", &["name", "dealname", "title", "deal"]),
                ("amount", &["amount", "value", "dealvalue"]),
                ("currency", &["currency"]),
                ("pipeline", &["pipeline"]),
                ("stage", &["stage", "dealstage"]),
                ("contactEmail", &["contactemail", "email", "contact"]),
                ("companyDomain", &["companydomain", "domain", "website"]),
                (
                    "expectedCloseDate",
                    &["expectedclosedate", "closedate", "close"],
                ),
            ],
        }
    }

    /// The tables an import of this kind grows.
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Kind::Contacts => &["contacts", "contact_tags", "lifecycle_changes"],
            Kind::Companies => &["companies"],
            Kind::Deals => &["deals", "deal_stage_history"],
        }
    }

    /// The field every file of this kind must map a column to.
    pub fn required(self) -> (&'static str, &'static str) {
        match self {
            Kind::Contacts => ("email", "the key contacts are upserted by"),
            Kind::Companies => ("domain", "the key companies are upserted by"),
            Kind::Deals => ("name", "every deal has a name"),
        }
    }
}

/// Where a CSV column goes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// One of the kind's fields ([`Kind::fields`]).
    Field(&'static str),
    /// A contact's custom attribute, by key.
    Attribute(String),
    /// Not imported.
    Skip,
}

impl Target {
    /// Parses a mapping's target for `kind`: one of its fields, `attributes.<key>`
    /// (contacts) or `skip`; the error names `field` and lists what is allowed.
    pub fn parse(kind: Kind, field: &str, text: &str) -> Result<Target> {
        if text == "skip" {
            return Ok(Target::Skip);
        }
        if let Some((name, _)) = kind.fields().iter().find(|(name, _)| *name == text) {
            return Ok(Target::Field(name));
        }
        if kind == Kind::Contacts
            && let Some(key) = text.strip_prefix("attributes.")
            && !key.is_empty()
            && key.len() <= 64
        {
            return Ok(Target::Attribute(key.to_string()));
        }
        let names: Vec<&str> = kind.fields().iter().map(|(name, _)| *name).collect();
        let attributes = if kind == Kind::Contacts {
            ", attributes.<key>"
        } else {
            ""
        };
        Err(EngineError::invalid(
            field,
            format!(
                "{text:?} is not a field of {}: use {}{attributes} or skip",
                kind.as_str(),
                names.join(", ")
            ),
        ))
    }

    /// As a mapping writes it: `email`, `attributes.plan`, `skip`.
    pub fn name(&self) -> String {
        match self {
            Target::Field(name) => (*name).to_string(),
            Target::Attribute(key) => format!("attributes.{key}"),
            Target::Skip => "skip".into(),
        }
    }
}

/// The target a header suggests for `kind`: the usual spellings of each field (`E-mail`,
/// `First name`, `given_name`, …); any other header becomes a custom attribute named after
/// it for contacts, and is skipped for the other kinds.
pub fn suggest(kind: Kind, header: &str) -> Target {
    let key: String = header
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    if key.is_empty() {
        return Target::Skip;
    }
    if let Some((name, _)) = kind
        .fields()
        .iter()
        .find(|(_, spellings)| spellings.contains(&key.as_str()))
    {
        return Target::Field(name);
    }
    match kind {
        Kind::Contacts => Target::Attribute(key),
        _ => Target::Skip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_suggest_their_fields() {
        let c = Kind::Contacts;
        assert_eq!(suggest(c, "E-mail"), Target::Field("email"));
        assert_eq!(suggest(c, "First Name"), Target::Field("firstName"));
        assert_eq!(suggest(c, "surname"), Target::Field("lastName"));
        assert_eq!(suggest(c, "Lead Source"), Target::Field("source"));
        assert_eq!(
            suggest(c, "Plan tier"),
            Target::Attribute("plantier".into())
        );
        assert_eq!(suggest(Kind::Companies, "Website"), Target::Field("domain"));
        assert_eq!(suggest(Kind::Companies, "Notes"), Target::Skip);
        assert_eq!(suggest(Kind::Deals, "Deal Stage"), Target::Field("stage"));
        assert_eq!(
            suggest(Kind::Deals, "Close date"),
            Target::Field("expectedCloseDate")
        );
    }

    #[test]
    fn targets_parse_per_kind() {
        assert!(Target::parse(Kind::Contacts, "m", "attributes.plan").is_ok());
        assert!(Target::parse(Kind::Contacts, "m", "password").is_err());
        assert!(Target::parse(Kind::Companies, "m", "attributes.plan").is_err());
        assert_eq!(
            Target::parse(Kind::Deals, "m", "externalId").unwrap(),
            Target::Field("externalId")
        );
        for kind in Kind::ALL {
            for (name, spellings) in kind.fields() {
                assert_eq!(Target::parse(kind, "m", name).unwrap().name(), *name);
                for s in *spellings {
                    assert!(
                        s.chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                        "{s} is not normalised, so no header would match it"
                    );
                }
            }
            assert_eq!(Kind::parse("k", kind.as_str()).unwrap(), kind);
            for table in kind.tables() {
                use sea_orm::EntityName;
                let known = [
                    rapport_schema::contact::Entity.table_name(),
                    rapport_schema::contact_tag::Entity.table_name(),
                    rapport_schema::lifecycle_change::Entity.table_name(),
                    rapport_schema::company::Entity.table_name(),
                    rapport_schema::deal::Entity.table_name(),
                    rapport_schema::deal_stage_change::Entity.table_name(),
                ];
                assert!(known.contains(table), "{table} is no table of ours");
            }
        }
    }
}
