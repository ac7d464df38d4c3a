//! A CSV row as the API's input for its kind: every cell parsed and named by its line and
//! field, and, for deals, the pipeline, stage, contact and company a row names by name,
//! email and domain looked up a batch at a time.

use std::collections::HashMap;

use chrono::NaiveDate;
use rapport_schema::{company, contact, pipeline, stage};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::{Map, Value};

use super::import::Pending;
use super::{Kind, Target};
use crate::crm::companies::{self, CompanyInput};
use crate::crm::contacts::{self, ContactInput};
use crate::crm::deals::DealInput;
use crate::error::{EngineError, Result};
use crate::values::{Domain, LifecycleStage, Patch};

/// A row as the API's input for its kind.
pub(super) enum Row {
    Contact(contacts::Checked),
    Company(CompanyInput),
    /// A deal names its pipeline, stage, contact and company as people know them; they
    /// are looked up when its batch is written.
    Deal {
        input: DealInput,
        pipeline: Option<String>,
        stage: Option<String>,
        contact_email: Option<String>,
        company_domain: Option<String>,
    },
}

/// Reads one row into its kind's input and key, every value parsed (errors name the
/// row's line and the field).
pub(super) fn to_row(
    kind: Kind,
    record: &csv::StringRecord,
    targets: &[Target],
    field: &str,
) -> Result<(Row, Option<String>)> {
    let cells = || {
        record
            .iter()
            .zip(targets)
            .filter(|(value, _)| !value.is_empty())
    };
    let at = |name: &str| format!("{field}.{name}");
    match kind {
        Kind::Contacts => {
            let input = to_contact(cells(), field)?;
            let key = match &input.email {
                Patch::Set(email) => email.trim().to_ascii_lowercase(),
                _ => String::new(),
            };
            let checked = contacts::check_upsert(input, field)?;
            Ok((Row::Contact(checked), Some(key)))
        }
        Kind::Companies => {
            let mut input = CompanyInput::default();
            for (value, target) in cells() {
                match target {
                    Target::Field("name") => input.name = Some(value.to_string()),
                    Target::Field("domain") => input.domain = Patch::Set(value.to_string()),
                    Target::Field("industry") => input.industry = Patch::Set(value.to_string()),
                    Target::Field("size") => {
                        input.size =
                            Patch::Set(value.replace([',', ' '], "").parse().map_err(|_| {
                                EngineError::invalid(
                                    at("size"),
                                    format!("{value:?} is not a whole number"),
                                )
                            })?)
                    }
                    Target::Field("country") => input.country = Patch::Set(value.to_string()),
                    _ => {}
                }
            }
            companies::check_upsert(&input, field)?;
            let Patch::Set(domain) = &input.domain else {
                unreachable!("checked above")
            };
            let key = Domain::parse(&at("domain"), domain)?.as_str().to_string();
            Ok((Row::Company(input), Some(key)))
        }
        Kind::Deals => {
            let mut input = DealInput::default();
            let (mut pipeline, mut stage, mut contact_email, mut company_domain) =
                (None, None, None, None);
            for (value, target) in cells() {
                let text = Some(value.to_string());
                match target {
                    Target::Field("externalId") => {
                        input.external_id = Patch::Set(value.to_string())
                    }
                    Target::Field("name") => input.name = text,
                    Target::Field("amount") => {
                        let amount: f64 = value.replace([',', ' '], "").parse().map_err(|_| {
                            EngineError::invalid(at("amount"), format!("{value:?} is not a number"))
                        })?;
                        input.amount = Some(amount);
                    }
                    Target::Field("currency") => input.currency = text,
                    Target::Field("pipeline") => pipeline = text,
                    Target::Field("stage") => stage = text,
                    Target::Field("contactEmail") => {
                        contact_email = Some(value.to_ascii_lowercase())
                    }
                    Target::Field("companyDomain") => {
                        company_domain = Some(
                            Domain::parse(&at("companyDomain"), value)?
                                .as_str()
                                .to_string(),
                        )
                    }
                    Target::Field("expectedCloseDate") => {
                        input.expected_close_date = Patch::Set(
                            NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
                                EngineError::invalid(
                                    at("expectedCloseDate"),
                                    format!("{value:?} is not a date (YYYY-MM-DD)"),
                                )
                            })?,
                        )
                    }
                    _ => {}
                }
            }
            let key = match &input.external_id {
                Patch::Set(k) => Some(k.trim().to_string()),
                _ => None,
            };
            if key.is_none() && input.name.is_none() {
                return Err(EngineError::invalid(
                    at("name"),
                    "is required for a new deal",
                ));
            }
            let row = Row::Deal {
                input,
                pipeline,
                stage,
                contact_email,
                company_domain,
            };
            Ok((row, key))
        }
    }
}

fn to_contact<'a>(
    cells: impl Iterator<Item = (&'a str, &'a Target)>,
    field: &str,
) -> Result<ContactInput> {
    let mut input = ContactInput::default();
    let mut attributes = Map::new();
    for (value, target) in cells {
        match target {
            Target::Field("email") => input.email = Patch::Set(value.to_string()),
            Target::Field("firstName") => input.first_name = Some(value.to_string()),
            Target::Field("lastName") => input.last_name = Some(value.to_string()),
            Target::Field("phone") => input.phone = Patch::Set(value.to_string()),
            Target::Field("source") => input.source = Patch::Set(value.to_string()),
            Target::Field("timezone") => input.timezone = Patch::Set(value.to_string()),
            Target::Field("lifecycleStage") => {
                let wanted = value.to_ascii_lowercase().replace([' ', '-'], "_");
                input.lifecycle_stage = Some(
                    LifecycleStage::ALL
                        .iter()
                        .copied()
                        .find(|s| s.as_str() == wanted)
                        .ok_or_else(|| {
                            EngineError::invalid(
                                format!("{field}.lifecycleStage"),
                                format!("{value:?} is not a lifecycle stage"),
                            )
                        })?,
                );
            }
            Target::Field("tags") => {
                input.tags = Some(
                    value
                        .split([';', ','])
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_string)
                        .collect(),
                );
            }
            Target::Attribute(key) => {
                attributes.insert(key.clone(), Value::String(value.to_string()));
            }
            _ => {}
        }
    }
    if !attributes.is_empty() {
        input.attributes = Some(Value::Object(attributes));
    }
    Ok(input)
}

/// What a batch of deal rows names by name, email or domain, looked up at once.
pub(super) struct References {
    /// Pipelines in id order (the first is the default), with their stages in order.
    pipelines: Vec<(pipeline::Model, Vec<stage::Model>)>,
    contacts: HashMap<String, i64>,
    companies: HashMap<String, i64>,
}

impl References {
    pub(super) async fn load(
        db: &impl sea_orm::ConnectionTrait,
        ws: i64,
        rows: &[Pending],
    ) -> Result<References> {
        let (mut emails, mut domains) = (Vec::new(), Vec::new());
        for p in rows {
            if let Row::Deal {
                contact_email,
                company_domain,
                ..
            } = &p.row
            {
                emails.extend(contact_email.clone());
                domains.extend(company_domain.clone());
            }
        }
        let pipelines = pipeline::Entity::find()
            .filter(pipeline::Column::WorkspaceId.eq(ws))
            .filter(pipeline::Column::DeletedAt.is_null())
            .order_by_asc(pipeline::Column::Id)
            .all(db)
            .await?;
        let stages = stage::Entity::find()
            .filter(stage::Column::WorkspaceId.eq(ws))
            .order_by_asc(stage::Column::Position)
            .order_by_asc(stage::Column::Id)
            .all(db)
            .await?;
        let pipelines = pipelines
            .into_iter()
            .map(|p| {
                let own = stages
                    .iter()
                    .filter(|s| s.pipeline_id == p.id)
                    .cloned()
                    .collect();
                (p, own)
            })
            .collect();
        let contacts = if emails.is_empty() {
            HashMap::new()
        } else {
            contact::Entity::find()
                .select_only()
                .column(contact::Column::Email)
                .column(contact::Column::Id)
                .filter(contact::Column::WorkspaceId.eq(ws))
                .filter(contact::Column::DeletedAt.is_null())
                .filter(contact::Column::Email.is_in(emails))
                .into_tuple::<(Option<String>, i64)>()
                .all(db)
                .await?
                .into_iter()
                .filter_map(|(e, id)| e.map(|e| (e, id)))
                .collect()
        };
        let companies = if domains.is_empty() {
            HashMap::new()
        } else {
            company::Entity::find()
                .select_only()
                .column(company::Column::Domain)
                .column(company::Column::Id)
                .filter(company::Column::WorkspaceId.eq(ws))
                .filter(company::Column::DeletedAt.is_null())
                .filter(company::Column::Domain.is_in(domains))
                .into_tuple::<(Option<String>, i64)>()
                .all(db)
                .await?
                .into_iter()
                .filter_map(|(d, id)| d.map(|d| (d, id)))
                .collect()
        };
        Ok(References {
            pipelines,
            contacts,
            companies,
        })
    }

    /// The deal input with its pipeline, stage, contact and company as ids. A stage
    /// without a pipeline is looked for in the first pipeline.
    pub(super) fn resolve(
        &self,
        field: &str,
        mut input: DealInput,
        pipeline: Option<String>,
        stage: Option<String>,
        contact_email: Option<String>,
        company_domain: Option<String>,
    ) -> Result<DealInput> {
        let same = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b.trim());
        let at = |name: &str| format!("{field}.{name}");
        let chosen = match &pipeline {
            Some(name) => Some(
                self.pipelines
                    .iter()
                    .find(|(p, _)| same(&p.name, name))
                    .ok_or_else(|| {
                        EngineError::invalid(
                            at("pipeline"),
                            format!("no pipeline is called {name:?}"),
                        )
                    })?,
            ),
            None if stage.is_some() => self.pipelines.first(),
            None => None,
        };
        if let Some((p, stages)) = chosen {
            input.pipeline_id = Some(p.id);
            if let Some(name) = &stage {
                let s = stages.iter().find(|s| same(&s.name, name)).ok_or_else(|| {
                    EngineError::invalid(
                        at("stage"),
                        format!("the pipeline {:?} has no stage {name:?}", p.name),
                    )
                })?;
                input.stage_id = Some(s.id);
            }
        }
        if let Some(email) = contact_email {
            let id = self.contacts.get(&email).ok_or_else(|| {
                EngineError::invalid(
                    at("contactEmail"),
                    format!("no contact has the email {email}"),
                )
            })?;
            input.contact_id = Patch::Set(*id);
        }
        if let Some(domain) = company_domain {
            let id = self.companies.get(&domain).ok_or_else(|| {
                EngineError::invalid(
                    "companyDomain",
                    format!("no company has the domain {domain}"),
                )
            })?;
            input.company_id = Patch::Set(*id);
        }
        Ok(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_contact_inputs() {
        let record = csv::StringRecord::from(vec!["a@b.example", "Ada", "vip; beta", "", "pro"]);
        let targets = [
            Target::Field("email"),
            Target::Field("firstName"),
            Target::Field("tags"),
            Target::Field("phone"),
            Target::Attribute("plan".into()),
        ];
        let (Row::Contact(_), key) = to_row(Kind::Contacts, &record, &targets, "line 2").unwrap()
        else {
            panic!("a contact row")
        };
        assert_eq!(key.as_deref(), Some("a@b.example"));
        let cells = record.iter().zip(&targets).filter(|(v, _)| !v.is_empty());
        let input = to_contact(cells, "line 2").unwrap();
        assert_eq!(input.email, Patch::Set("a@b.example".into()));
        assert_eq!(input.tags, Some(vec!["vip".into(), "beta".into()]));
        assert!(
            matches!(input.phone, Patch::Keep),
            "an empty cell keeps the field"
        );
        assert_eq!(input.attributes, Some(serde_json::json!({"plan": "pro"})));
    }

    #[test]
    fn deal_rows_parse_amounts_and_dates_and_name_bad_cells() {
        let targets = [
            Target::Field("name"),
            Target::Field("amount"),
            Target::Field("expectedCloseDate"),
        ];
        let ok = csv::StringRecord::from(vec!["Renewal", "1,200.50", "2027-01-31"]);
        let (Row::Deal { input, .. }, key) = to_row(Kind::Deals, &ok, &targets, "line 2").unwrap()
        else {
            panic!("a deal row")
        };
        assert_eq!((input.amount, key), (Some(1200.5), None));
        let bad = csv::StringRecord::from(vec!["Renewal", "lots", ""]);
        let e = to_row(Kind::Deals, &bad, &targets, "line 3").err().unwrap();
        assert!(e.to_string().contains("line 3.amount"), "{e}");
        let nameless = csv::StringRecord::from(vec!["", "5", ""]);
        assert!(to_row(Kind::Deals, &nameless, &targets, "line 4").is_err());
    }
}
