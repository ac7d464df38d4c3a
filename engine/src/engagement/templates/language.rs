//! What a template may compute.
//!
//! The renderer's fuel counts steps and its output is capped in bytes, but a value built
//! *inside* a render is neither: `'x' * 100000000` is one step and 100 MB, and a chain of
//! `{% set b = a ~ a %}` doubles a value per line. So a template may only use operations
//! that never make a value much larger than what it came from: no operator that builds text
//! (`~`, `+`, `*`, `**`), no captured blocks (their output bypasses the byte cap), no macros
//! or includes, and filters from a list whose results stay near their input's size (`join`
//! and `replace`, which can grow, are Rapport's own and capped). Arithmetic beyond
//! comparisons is rarely wanted in an email; text is joined by writing the parts side by
//! side.
//!
//! The operators are refused from the tokens, before compiling: the compiler folds
//! constant expressions, so `'x' * 100000000` would be built while compiling. The rest is
//! read from the compiled instructions. Both are flat lists: the check is linear in the
//! template and never recurses.

use minijinja::machinery::Instruction;
use minijinja::{Environment, Error, ErrorKind, Value};

use crate::error::{EngineError, Result};

use super::MAX_BODY_BYTES;

/// Built-in filters a template may apply: none returns much more than it was given.
const FILTERS: &[&str] = &[
    "abs", "attr", "bool", "count", "d", "default", "dictsort", "e", "escape", "first", "float",
    "groupby", "int", "items", "last", "length", "lines", "list", "lower", "max", "min", "reject",
    "reverse", "round", "safe", "select", "sort", "split", "string", "title", "trim", "unique",
    "upper",
];
/// Filters Rapport replaces with versions capped at [`MAX_BODY_BYTES`].
const CAPPED_FILTERS: &[&str] = &["join", "replace"];
/// Functions a template may call (`range` is capped at 100,000 items by minijinja).
const FUNCTIONS: &[&str] = &["range", "dict"];

/// Adds Rapport's capped `join` and `replace` to `env`.
pub(super) fn add_filters(env: &mut Environment<'_>) {
    env.add_filter("join", join);
    env.add_filter("replace", replace);
}

/// Refuses source text (of part `field`) that uses an operator which builds text; run
/// before the source is compiled. Text that does not tokenize is left to the compiler,
/// which names the syntax error.
pub(super) fn check_operators(field: &str, source: &str) -> Result<()> {
    use minijinja::machinery::{Token, WhitespaceConfig, tokenize};
    let tokens = tokenize(
        source,
        false,
        minijinja::syntax::SyntaxConfig,
        WhitespaceConfig::default(),
    );
    for token in tokens {
        let Ok((token, span)) = token else {
            return Ok(());
        };
        let why = match token {
            Token::Tilde | Token::Plus => {
                "joins values with `~` or `+`; write the parts side by side instead"
            }
            Token::Mul | Token::Pow => "multiplies values with `*` or `**`",
            _ => continue,
        };
        return Err(EngineError::invalid(
            field,
            format!("{why} (line {})", span.start_line),
        ));
    }
    Ok(())
}

/// Refuses a compiled template (of part `field`) that uses an operation outside the
/// language; [`check_operators`] has run on its source.
pub(super) fn check(field: &str, template: &minijinja::Template<'_, '_>) -> Result<()> {
    let compiled = minijinja::machinery::get_compiled_template(template);
    let all = std::iter::once(&compiled.instructions).chain(compiled.blocks.values());
    for instructions in all {
        for idx in 0..instructions.len() as u32 {
            let Some(instruction) = instructions.get(idx) else {
                continue;
            };
            if let Some(why) = refused(instruction) {
                let line = instructions
                    .get_line(idx)
                    .map(|l| format!(" (line {l})"))
                    .unwrap_or_default();
                return Err(EngineError::invalid(field, format!("{why}{line}")));
            }
        }
    }
    Ok(())
}

fn refused(instruction: &Instruction<'_>) -> Option<String> {
    Some(match instruction {
        Instruction::Add | Instruction::StringConcat => {
            "joins values with `~` or `+`; write the parts side by side instead".into()
        }
        Instruction::Mul | Instruction::Pow => "multiplies values with `*` or `**`".into(),
        Instruction::BeginCapture(_) => {
            "captures output into a value (`{% set %}…{% endset %}`, `{% filter %}`, `{% call %}`)"
                .into()
        }
        Instruction::BuildMacro(..) => "defines a macro".into(),
        Instruction::Include(_) | Instruction::LoadBlocks | Instruction::CallBlock(_) => {
            "includes or extends another template".into()
        }
        Instruction::ApplyFilter(name, ..)
            if !FILTERS.contains(name) && !CAPPED_FILTERS.contains(name) =>
        {
            format!(
                "uses the filter `{}`; emails may use {}, {}",
                crate::values::excerpt(name),
                FILTERS.join(", "),
                CAPPED_FILTERS.join(", ")
            )
        }
        Instruction::CallFunction(name, _) if !FUNCTIONS.contains(name) => format!(
            "calls `{}`; emails may call {}",
            crate::values::excerpt(name),
            FUNCTIONS.join(", ")
        ),
        _ => return None,
    })
}

fn too_large(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("{what} makes more than {MAX_BODY_BYTES} bytes"),
    )
}

/// `join`, stopping once the text passes [`MAX_BODY_BYTES`].
fn join(value: Value, separator: Option<String>) -> std::result::Result<String, Error> {
    use std::fmt::Write;
    let separator = separator.unwrap_or_default();
    let mut out = String::new();
    for (i, item) in value.try_iter()?.enumerate() {
        if i > 0 {
            out.push_str(&separator);
        }
        match item.as_str() {
            Some(s) => out.push_str(s),
            None => {
                let _ = write!(out, "{item}");
            }
        }
        if out.len() > MAX_BODY_BYTES {
            return Err(too_large("join"));
        }
    }
    Ok(out)
}

/// `replace`, refused before allocating when the result would pass [`MAX_BODY_BYTES`].
fn replace(
    text: String,
    from: String,
    to: String,
    count: Option<usize>,
) -> std::result::Result<String, Error> {
    let count = count.unwrap_or(usize::MAX);
    if to.len() > from.len() {
        // An empty pattern matches between every character and at both ends.
        let matches = if from.is_empty() {
            text.chars().count() + 1
        } else {
            text.matches(from.as_str()).count()
        };
        let grown = matches.min(count).saturating_mul(to.len() - from.len());
        if text.len().saturating_add(grown) > MAX_BODY_BYTES {
            return Err(too_large("replace"));
        }
    }
    Ok(text.replacen(from.as_str(), &to, count))
}

#[cfg(test)]
mod tests {
    use super::super::{TemplateParts, check as check_parts, render};

    fn html(source: &str) -> TemplateParts {
        TemplateParts {
            subject: "Hi".into(),
            html: source.into(),
            text: "t".into(),
        }
    }

    #[test]
    fn operations_that_grow_values_are_refused_on_save() {
        for (source, says) in [
            ("{{ 'x' * 100000000 }}", "multiplies"),
            ("{{ 2 ** 8 }}", "multiplies"),
            ("{% set a = contact.name ~ contact.name %}", "`~` or `+`"),
            ("{{ contact.name + contact.name }}", "`~` or `+`"),
            (
                "{% set a %}{{ contact.name }}{% endset %}",
                "captures output",
            ),
            ("{% filter upper %}x{% endfilter %}", "captures output"),
            ("{% macro m() %}x{% endmacro %}", "defines a macro"),
            ("{{ contact.name | tojson }}", "the filter `tojson`"),
            (
                "{{ contact.name | indent(100000000) }}",
                "the filter `indent`",
            ),
            (
                "{{ contact.tags | map('upper') | list }}",
                "the filter `map`",
            ),
            ("{{ [1] | map('upper') }}", "the filter `map`"),
        ] {
            let err = check_parts(&html(source)).unwrap_err().to_string();
            assert!(
                err.starts_with("html: ") && err.contains(says),
                "{source}: {err}"
            );
        }
    }

    #[test]
    fn what_emails_use_still_renders() {
        let vars = minijinja::Value::from_serialize(serde_json::json!({
            "contact": {"first_name": "Ada", "tags": ["a", "b"]},
        }));
        let source = "{% set name = contact.first_name | default('there') | title %}\
                      Hi {{ name }}{% for t in contact.tags %}{% if loop.first %}: {% endif %}\
                      {{ t | upper }}{% endfor %} ({{ contact.tags | join(', ') }}, \
                      {{ 'a-b' | replace('-', '+') }}, {{ [1, 2, 3] | length }})";
        check_parts(&html(source)).unwrap();
        let out = render(&html(source), &vars).unwrap();
        assert_eq!(out.html, "Hi Ada: AB (a, b, a+b, 3)");
    }

    #[test]
    fn join_and_replace_are_capped() {
        let vars = minijinja::Value::from_serialize(serde_json::json!({
            "contact": {"first_name": "x".repeat(1000)},
        }));
        for source in [
            "{{ contact.first_name | list | join(contact.first_name) }}",
            "{{ contact.first_name | replace('x', contact.first_name) }}",
            "{{ contact.first_name | replace('', contact.first_name) }}",
        ] {
            let err = render(&html(source), &vars).unwrap_err().to_string();
            assert!(err.contains("makes more than"), "{source}: {err}");
        }
    }

    #[test]
    fn templates_saved_before_the_rules_are_refused_when_rendered() {
        let vars = minijinja::Value::from(());
        let err = render(&html("{{ 'x' * 100000000 }}"), &vars).unwrap_err();
        assert!(err.to_string().contains("multiplies"), "{err}");
    }
}
