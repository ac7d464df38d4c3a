//! Email templates in Jinja syntax (minijinja), sandboxed: no file or network access,
//! a fuel limit on every render, and only the variables Rapport provides.
//!
//! A template is checked when it is saved — it must parse, may name only known variables
//! and may use only operations that cannot blow a value up ([`language`]) — so a typo is
//! refused then, not discovered while a campaign is sending.
//! Rendering is lenient about *missing values* (a contact without a first name or a
//! company) so
//! `{{ contact.first_name | default("there") }}` gives the fallback; unknown *names* never
//! get that far.

mod language;
pub mod personal;

pub use personal::{Needs, Personal};

use minijinja::{Environment, UndefinedBehavior, Value};
use rapport_schema::{company, contact, email_template};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde_json::json;

use crate::clock;
use crate::error::{EngineError, Result};
use crate::platform::auth::Principal;
use crate::platform::records;
use crate::values::{Scope, Text, json_strings};

/// Contact fields a template may use (`contact.<field>`; `contact.attributes.<key>` too).
pub const CONTACT_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "name",
    "email",
    "phone",
    "lifecycle_stage",
    "source",
    "tags",
    "timezone",
    "attributes",
];
/// Company fields a template may use (`company.<field>`).
pub const COMPANY_FIELDS: &[&str] = &["name", "domain", "industry", "size", "country"];
/// Other variables Rapport fills in when sending.
pub const GLOBALS: &[&str] = &["unsubscribe_url", "preferences_url"];

/// The links of the pages a recipient reaches from an email.
#[derive(Clone, Copy, Debug)]
pub struct PageLinks<'a> {
    /// `unsubscribe_url`: one-click unsubscribe from marketing.
    pub unsubscribe: &'a str,
    /// `preferences_url`: the preference page (topics, or unsubscribe from all).
    pub preferences: &'a str,
}

impl PageLinks<'_> {
    /// No pages (a task title, a test render).
    pub const NONE: PageLinks<'static> = PageLinks {
        unsubscribe: "",
        preferences: "",
    };
}

/// Instructions one render may spend: ample for an email, fatal for a runaway loop.
const FUEL: u64 = 100_000;

/// The most a template part's source may hold, in bytes.
pub const MAX_SOURCE_BYTES: usize = 256 * 1024;

/// The most a rendered subject may hold, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 2_000;
/// The most a rendered HTML or text body may hold, in bytes: fuel counts steps, not
/// bytes, and one step can repeat a string a million times. (Gmail clips a message
/// after 102 kB; this leaves room.)
pub const MAX_BODY_BYTES: usize = 512 * 1024;

/// A render's output, refusing bytes past its limit: the render stops at the first write
/// that would pass it instead of building the whole text first.
struct Capped {
    out: Vec<u8>,
    limit: usize,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.limit {
            self.over = true;
            return Err(std::io::Error::other("the rendered text is too large"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The three parts of an email.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TemplateParts {
    /// Subject line.
    pub subject: String,
    /// HTML body.
    pub html: String,
    /// Plain-text body.
    pub text: String,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Chainable: a contact without a company renders `{{ company.name | default('') }}`
    // as the fallback instead of failing on the missing `company`.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_fuel(Some(FUEL));
    language::add_filters(&mut env);
    env
}

fn allowed(variable: &str) -> bool {
    let mut parts = variable.split('.');
    let (first, second, third) = (parts.next(), parts.next(), parts.next());
    if let Some(known) = first.and_then(|f| personal::allowed(f, second, third)) {
        return known;
    }
    match (first, second, third) {
        (Some("contact"), None, _) | (Some("company"), None, _) => true,
        (Some("contact"), Some("attributes"), _) => true,
        (Some("contact"), Some(f), None) => CONTACT_FIELDS.contains(&f),
        (Some("company"), Some(f), None) => COMPANY_FIELDS.contains(&f),
        (Some(g), None, _) => GLOBALS.contains(&g),
        _ => false,
    }
}

/// Every variable a template may use, as `group.field` paths (`contact.attributes.*`
/// stands for any custom attribute), for editors to offer.
pub fn variables() -> Vec<String> {
    let fields = |group: &str, list: &[&str]| -> Vec<String> {
        list.iter().map(|f| format!("{group}.{f}")).collect()
    };
    let mut out = fields("contact", CONTACT_FIELDS);
    out.push("contact.attributes.*".into());
    out.extend(fields("company", COMPANY_FIELDS));
    out.extend(fields("owner", personal::OWNER_FIELDS));
    out.extend(fields("lead_score", personal::LEAD_SCORE_FIELDS));
    out.extend(fields("churn_risk", personal::CHURN_RISK_FIELDS));
    out.extend(fields("last_order", personal::LAST_ORDER_FIELDS));
    out.extend(fields("open_deal", personal::OPEN_DEAL_FIELDS));
    out.push("recommendations".into());
    out.extend(GLOBALS.iter().map(|g| g.to_string()));
    out
}

/// ` (line N)` for the first line of `source` that mentions `variable` inside a tag, so an
/// editor can mark it; empty when no line does (it came from an `include`, say).
fn line_of(source: &str, variable: &str) -> String {
    source
        .lines()
        .position(|l| {
            l.match_indices(variable).any(|(at, _)| {
                let before = &l[..at];
                before.rfind("{{").max(before.rfind("{%"))
                    > before.rfind("}}").max(before.rfind("%}"))
            })
        })
        .map(|i| format!(" (line {})", i + 1))
        .unwrap_or_default()
}

/// Checks that each part parses and names only known variables. Errors name the part
/// and, where it is known, the line: `does not parse: … (line 3)`.
pub fn check(parts: &TemplateParts) -> Result<()> {
    let env = environment();
    for (field, source) in [
        ("subject", &parts.subject),
        ("html", &parts.html),
        ("text", &parts.text),
    ] {
        // Checked before the parser sees it: the work of a check grows with the source.
        if source.len() > MAX_SOURCE_BYTES {
            return Err(EngineError::invalid(
                field,
                format!("is longer than {MAX_SOURCE_BYTES} bytes"),
            ));
        }
        language::check_operators(field, source)?;
        let template = env.template_from_str(source).map_err(|e| {
            EngineError::invalid(
                field,
                format!(
                    "does not parse: {}{}",
                    e.detail().unwrap_or("syntax error"),
                    e.line().map(|l| format!(" (line {l})")).unwrap_or_default()
                ),
            )
        })?;
        language::check(field, &template)?;
        let mut unknown: Vec<String> = template
            .undeclared_variables(true)
            .into_iter()
            .filter(|v| !allowed(v))
            .collect();
        unknown.sort();
        if let Some(first) = unknown.first() {
            return Err(EngineError::invalid(
                field,
                format!(
                    "uses unknown variable '{first}'{} (known: contact.{}, contact.attributes.*, company.{}, owner.{}, lead_score.{}, churn_risk.{}, last_order.{}, open_deal.{}, recommendations (each: {}), {})",
                    line_of(source, first),
                    CONTACT_FIELDS.join("/"),
                    COMPANY_FIELDS.join("/"),
                    personal::OWNER_FIELDS.join("/"),
                    personal::LEAD_SCORE_FIELDS.join("/"),
                    personal::CHURN_RISK_FIELDS.join("/"),
                    personal::LAST_ORDER_FIELDS.join("/"),
                    personal::OPEN_DEAL_FIELDS.join("/"),
                    personal::PRODUCT_FIELDS.join("/"),
                    GLOBALS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The variables of one contact: its fields, its company, what [`personal`] loaded for
/// it. Missing values are left out (undefined), so `default` filters apply to them.
pub fn context(
    person: &contact::Model,
    firm: Option<&company::Model>,
    personal: Option<&Personal>,
    pages: &PageLinks<'_>,
) -> Value {
    let mut c = serde_json::Map::new();
    let mut put = |k: &str, v: Option<serde_json::Value>| {
        if let Some(v) = v.filter(|v| !v.is_null() && v.as_str() != Some("")) {
            c.insert(k.to_string(), v);
        }
    };
    put("first_name", Some(json!(person.first_name)));
    put("last_name", Some(json!(person.last_name)));
    put(
        "name",
        Some(json!(
            format!("{} {}", person.first_name, person.last_name).trim()
        )),
    );
    put("email", person.email.clone().map(|e| json!(e)));
    put("phone", person.phone.clone().map(|p| json!(p)));
    put("lifecycle_stage", Some(json!(person.lifecycle_stage)));
    put("source", person.source.clone().map(|s| json!(s)));
    put("tags", Some(json!(json_strings(&person.tags))));
    put("timezone", person.timezone.clone().map(|t| json!(t)));
    put("attributes", Some(person.attributes.clone()));
    let company = firm.map(|f| {
        let mut m = serde_json::Map::new();
        for (k, v) in [
            ("name", Some(json!(f.name))),
            ("domain", f.domain.clone().map(|d| json!(d))),
            ("industry", f.industry.clone().map(|i| json!(i))),
            ("size", f.size.map(|s| json!(s))),
            ("country", f.country.clone().map(|c| json!(c))),
        ] {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        }
        serde_json::Value::Object(m)
    });
    let mut root = serde_json::Map::new();
    root.insert("contact".into(), serde_json::Value::Object(c));
    if let Some(company) = company {
        root.insert("company".into(), company);
    }
    for (name, value) in personal.map(|p| &p.0).into_iter().flatten() {
        root.insert(name.clone(), value.clone());
    }
    root.insert("unsubscribe_url".into(), json!(pages.unsubscribe));
    root.insert("preferences_url".into(), json!(pages.preferences));
    Value::from_serialize(serde_json::Value::Object(root))
}

/// Renders the three parts. HTML is auto-escaped; subject and text are not.
pub fn render(parts: &TemplateParts, variables: &Value) -> Result<TemplateParts> {
    let mut env = environment();
    env.set_auto_escape_callback(|name| {
        if name == "html" {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    let mut out = TemplateParts::default();
    for (name, source, slot) in [
        ("subject", &parts.subject, &mut out.subject),
        ("html", &parts.html, &mut out.html),
        ("text", &parts.text, &mut out.text),
    ] {
        // Templates saved before a rule of the language existed meet it here.
        language::check_operators(name, source)?;
        env.add_template_owned(name.to_string(), source.clone())
            .map_err(|e| EngineError::invalid(name, format!("does not parse: {e}")))?;
        let limit = if name == "subject" {
            MAX_SUBJECT_BYTES
        } else {
            MAX_BODY_BYTES
        };
        let mut sink = Capped {
            out: Vec::new(),
            limit,
            over: false,
        };
        let template = env
            .get_template(name)
            .map_err(|e| EngineError::invalid(name, format!("does not parse: {e}")))?;
        language::check(name, &template)?;
        let rendered = template
            .render_captured_to(variables, &mut sink)
            .map(|_| ());
        if sink.over {
            return Err(EngineError::invalid(
                name,
                format!("renders to more than {limit} bytes"),
            ));
        }
        rendered.map_err(|e| EngineError::invalid(name, format!("cannot be rendered: {e}")))?;
        *slot = String::from_utf8(sink.out)
            .map_err(|_| EngineError::invalid(name, "renders to text that is not UTF-8"))?;
    }
    // A subject is one line, whatever the template produced.
    out.subject = out.subject.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(out)
}

/// A template as a client writes it.
#[derive(Clone, Debug, Default)]
pub struct EmailTemplateInput {
    /// Its name.
    pub name: Option<String>,
    /// The parts; all three are needed on create.
    pub subject: Option<String>,
    /// HTML body.
    pub html: Option<String>,
    /// Plain-text body.
    pub text: Option<String>,
}

/// A new template's parts (absent parts empty), with the rules a template must meet: a
/// subject, a body, and [`check`].
fn checked_parts(input: EmailTemplateInput) -> Result<TemplateParts> {
    let parts = TemplateParts {
        subject: input.subject.unwrap_or_default(),
        html: input.html.unwrap_or_default(),
        text: input.text.unwrap_or_default(),
    };
    Text::parse("subject", &parts.subject, 2000)?;
    if parts.html.trim().is_empty() && parts.text.trim().is_empty() {
        return Err(EngineError::invalid(
            "text",
            "an email needs an HTML or a text body",
        ));
    }
    check(&parts)?;
    Ok(parts)
}

/// Saves a new template after checking it (write scope).
pub async fn create(
    db: &impl ConnectionTrait,
    who: &Principal,
    input: EmailTemplateInput,
) -> Result<email_template::Model> {
    who.require(Scope::Write)?;
    let name = Text::parse("name", input.name.as_deref().unwrap_or_default(), 200)?;
    let parts = checked_parts(input)?;
    let now = clock::now();
    Ok(email_template::ActiveModel {
        workspace_id: Set(who.workspace_id),
        name: Set(name.into_string()),
        subject: Set(parts.subject),
        html: Set(parts.html),
        text: Set(parts.text),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

/// Renders a template that is not saved (an editor's draft) for one contact, after the
/// checks [`create`] makes, so what previews is what would save. Reads only.
pub async fn preview_draft(
    db: &impl ConnectionTrait,
    who: &Principal,
    input: EmailTemplateInput,
    contact_id: i64,
    pages: &PageLinks<'_>,
) -> Result<TemplateParts> {
    let parts = checked_parts(input)?;
    render_parts_for(db, who.workspace_id, parts, contact_id, pages).await
}

/// Changes a template; the result is checked as a whole before it is saved.
pub async fn update(
    db: &impl ConnectionTrait,
    who: &Principal,
    id: i64,
    input: EmailTemplateInput,
) -> Result<email_template::Model> {
    who.require(Scope::Write)?;
    let current = records::get::<email_template::Entity>(db, who.workspace_id, id).await?;
    let parts = TemplateParts {
        subject: input.subject.unwrap_or(current.subject.clone()),
        html: input.html.unwrap_or(current.html.clone()),
        text: input.text.unwrap_or(current.text.clone()),
    };
    Text::parse("subject", &parts.subject, 2000)?;
    check(&parts)?;
    let mut row: email_template::ActiveModel = current.into();
    if let Some(name) = input.name {
        row.name = Set(Text::parse("name", &name, 200)?.into_string());
    }
    row.subject = Set(parts.subject);
    row.html = Set(parts.html);
    row.text = Set(parts.text);
    row.updated_at = Set(clock::now());
    Ok(row.update(db).await?)
}

/// Renders a saved template for one contact of the workspace (a preview, or a send).
pub async fn render_for(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    template: &email_template::Model,
    contact_id: i64,
    pages: &PageLinks<'_>,
) -> Result<TemplateParts> {
    let parts = TemplateParts {
        subject: template.subject.clone(),
        html: template.html.clone(),
        text: template.text.clone(),
    };
    render_parts_for(db, workspace_id, parts, contact_id, pages).await
}

/// Renders template parts for one contact of the workspace. Parts not saved yet must
/// pass [`check`] first, as a saved template did.
pub async fn render_parts_for(
    db: &impl ConnectionTrait,
    workspace_id: i64,
    parts: TemplateParts,
    contact_id: i64,
    pages: &PageLinks<'_>,
) -> Result<TemplateParts> {
    let person = records::get::<contact::Entity>(db, workspace_id, contact_id).await?;
    let firm = match person.company_id {
        Some(c) => Some(
            records::get_with::<company::Entity>(db, workspace_id, c, records::Deleted::Include)
                .await?,
        ),
        None => None,
    };
    let needs = Needs::of_parts([&parts]);
    let personal = personal::load(db, workspace_id, &[&person], needs).await?;
    let variables = context(&person, firm.as_ref(), personal.get(&person.id), pages);
    render_blocking(parts, variables).await
}

/// [`render`] on the blocking pool: a render may spend its whole fuel, which is CPU time
/// an async worker thread owes to other requests.
pub async fn render_blocking(parts: TemplateParts, variables: Value) -> Result<TemplateParts> {
    tokio::task::spawn_blocking(move || render(&parts, &variables))
        .await
        .map_err(|e| EngineError::internal(format!("rendering a template panicked: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(subject: &str, html: &str, text: &str) -> TemplateParts {
        TemplateParts {
            subject: subject.into(),
            html: html.into(),
            text: text.into(),
        }
    }

    #[test]
    fn known_variables_pass_and_unknown_ones_are_named() {
        assert!(check(&parts(
            "Hi {{ contact.first_name | default('there') }}",
            "<p>{{ company.name }} {{ contact.attributes.plan }}</p><a href=\"{{ unsubscribe_url }}\">x</a>",
            "{% for t in contact.tags %}{{ t }}{% endfor %}"
        ))
        .is_ok());
        let err = check(&parts("Hi {{ contact.frist_name }}", "", "x")).unwrap_err();
        assert!(
            err.to_string()
                .contains("subject: uses unknown variable 'contact.frist_name'"),
            "{err}"
        );
        let err = check(&parts("Hi", "{% if %}", "x")).unwrap_err();
        assert!(err.to_string().starts_with("html: does not parse"), "{err}");
        assert!(check(&parts("{{ secrets }}", "", "x")).is_err());
    }

    #[test]
    fn renders_with_fallbacks_and_escapes_html_only() {
        let vars = Value::from_serialize(json!({
            "contact": {"last_name": "Lovelace", "attributes": {"plan": "<pro>"}},
            "unsubscribe_url": "https://x/u?token=a.b"
        }));
        let out = render(
            &parts(
                "Hi {{ contact.first_name | default('there') }}",
                "<p>{{ contact.attributes.plan }}</p>",
                "Plan: {{ contact.attributes.plan }} {{ unsubscribe_url }}",
            ),
            &vars,
        )
        .unwrap();
        assert_eq!(out.subject, "Hi there");
        assert_eq!(out.html, "<p>&lt;pro&gt;</p>");
        assert_eq!(out.text, "Plan: <pro> https://x/u?token=a.b");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]
        // Any template text renders or is refused with a message; none panics, none runs
        // past its fuel or its byte cap.
        #[test]
        fn any_template_renders_or_is_refused(
            html in "(\\{\\{ ?|\\{% ?|%\\}|\\}\\}|for x in range\\(9+\\)|endfor|'x' ?\\* ?9+|contact\\.[a-z_]{1,10}|\\||[a-z ]{0,4}|~){0,24}"
        ) {
            let vars = Value::from_serialize(json!({"contact": {"first_name": "Ada"}}));
            if let Ok(out) = render(&parts("Hi", &html, "t"), &vars) {
                proptest::prop_assert!(out.html.len() <= MAX_BODY_BYTES);
            }
        }
    }

    #[test]
    fn output_is_capped_in_bytes() {
        let vars = Value::from_serialize(json!({}));
        // A loop that would render 1 MB.
        let huge = parts(
            "Hi",
            &format!(
                "{{% for i in range(10000) %}}{}{{% endfor %}}",
                "x".repeat(100)
            ),
            "x",
        );
        let e = render(&huge, &vars).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("html: renders to more than {MAX_BODY_BYTES} bytes")
        );
        let e = render(
            &parts("{% for i in range(500) %}yyyyy{% endfor %}", "", ""),
            &vars,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("subject: renders to more"), "{e}");
        let ok = render(
            &parts("Hi", "{% for i in range(100) %}xxxxxxxxxx{% endfor %}", "t"),
            &vars,
        )
        .unwrap();
        assert_eq!(ok.html.len(), 1000);
    }

    #[test]
    fn a_runaway_loop_runs_out_of_fuel() {
        let out = render(
            &parts(
                "x",
                "",
                "{% for i in range(100000) %}{% for j in range(100000) %}.{% endfor %}{% endfor %}",
            ),
            &Value::from(()),
        );
        assert!(out.is_err());
    }
}
