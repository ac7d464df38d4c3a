//! A document's shape: the document with the strings and numbers of its arguments left
//! out. Clients that write values into the document (`contact(id: "42")`) send a new text
//! each time, but one shape. What the schema's validation checks of a document depends on
//! its shape alone, except the types of those values, which a plan checks per request as
//! it checks variables; so once the schema has run one document of a shape, the others
//! may run from plans too.

use async_graphql::parser::Positioned;
use async_graphql::parser::types::{Directive, ExecutableDocument, Selection, SelectionSet};
use async_graphql_value::Value;
use std::fmt::Write;

/// Selections nested deeper than this give no shape (the request limits refuse such
/// documents long before; this bounds the walk).
const MAX_DEPTH: usize = 64;

/// The shape of `doc` as text (equal texts, equal shapes); `None` past the depth bound.
pub fn of(doc: &ExecutableDocument) -> Option<String> {
    let mut out = String::with_capacity(256);
    for (name, op) in doc.operations.iter() {
        let op = &op.node;
        let _ = write!(out, "{} {}(", op.ty, name.map_or("", |n| n.as_str()));
        for v in &op.variable_definitions {
            let v = &v.node;
            let _ = write!(out, "${}:{}", v.name.node, v.var_type.node);
            if let Some(default) = &v.default_value {
                // Defaults are checked against their types by validation: kept as written.
                let _ = write!(out, "={}", default.node);
            }
            directives(&mut out, &v.directives);
            out.push(',');
        }
        out.push(')');
        directives(&mut out, &op.directives);
        selections(&mut out, &op.selection_set, 0)?;
    }
    let mut fragments: Vec<_> = doc.fragments.iter().collect();
    fragments.sort_by(|a, b| a.0.cmp(b.0));
    for (name, fragment) in fragments {
        let f = &fragment.node;
        let _ = write!(out, "fragment {name} on {}", f.type_condition.node.on.node);
        directives(&mut out, &f.directives);
        selections(&mut out, &f.selection_set, 0)?;
    }
    Some(out)
}

fn selections(out: &mut String, set: &Positioned<SelectionSet>, depth: usize) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    out.push('{');
    for item in &set.node.items {
        match &item.node {
            Selection::Field(f) => {
                let f = &f.node;
                if let Some(alias) = &f.alias {
                    let _ = write!(out, "{}:", alias.node);
                }
                out.push_str(f.name.node.as_str());
                if !f.arguments.is_empty() {
                    out.push('(');
                    for (name, value) in &f.arguments {
                        let _ = write!(out, "{}:", name.node);
                        shape_of_value(out, &value.node, 0)?;
                        out.push(',');
                    }
                    out.push(')');
                }
                directives(out, &f.directives);
                if !f.selection_set.node.items.is_empty() {
                    selections(out, &f.selection_set, depth + 1)?;
                }
            }
            Selection::FragmentSpread(s) => {
                let _ = write!(out, "...{}", s.node.fragment_name.node);
                directives(out, &s.node.directives);
            }
            Selection::InlineFragment(i) => {
                out.push_str("...");
                if let Some(on) = &i.node.type_condition {
                    let _ = write!(out, " on {}", on.node.on.node);
                }
                directives(out, &i.node.directives);
                selections(out, &i.node.selection_set, depth + 1)?;
            }
        }
        out.push(' ');
    }
    out.push('}');
    Some(())
}

/// Directives as written: `@include(if: true)` and `@include(if: false)` differ.
fn directives(out: &mut String, directives: &[Positioned<Directive>]) {
    for d in directives {
        let _ = write!(out, "@{}(", d.node.name.node);
        for (name, value) in &d.node.arguments {
            let _ = write!(out, "{}:{},", name.node, value.node);
        }
        out.push(')');
    }
}

/// An argument's value with its strings and numbers left out (`§`); everything else, the
/// enum values and the fields of input objects among it, as written.
fn shape_of_value(out: &mut String, v: &Value, depth: usize) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    match v {
        Value::String(_) | Value::Number(_) => out.push('§'),
        Value::List(items) => {
            out.push('[');
            for item in items {
                shape_of_value(out, item, depth + 1)?;
                out.push(',');
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (name, value) in fields {
                let _ = write!(out, "{name}:");
                shape_of_value(out, value, depth + 1)?;
                out.push(',');
            }
            out.push('}');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn shape(query: &str) -> String {
        of(&parse_query(query).expect("parses")).expect("a shape")
    }

    #[test]
    fn only_the_strings_and_numbers_of_arguments_are_left_out() {
        let a =
            shape("{ contacts(first: 5, filter: {email: {contains: \"a\"}}) { nodes { id } } }");
        assert_eq!(
            a,
            shape(
                "query { contacts(first: 50, filter: {email: {contains: \"b\"}}) { nodes { id } } }"
            )
        );
        for other in [
            "{ contacts(first: 5, filter: {emial: {contains: \"a\"}}) { nodes { id } } }",
            "{ contacts(first: 5, filter: {email: {eq: \"a\"}}) { nodes { id } } }",
            "{ contacts(last: 5, filter: {email: {contains: \"a\"}}) { nodes { id } } }",
            "{ contacts(first: 5, filter: {email: {contains: \"a\"}}) { nodes { id name } } }",
            "{ contacts(first: 5, filter: {email: {contains: \"a\"}}) { nodes { id @skip(if: true) } } }",
            "{ contacts(first: 5, filter: {email: {contains: \"a\"}}) { nodes { x: id } } }",
            "{ contacts(first: 5, filter: {email: {contains: [\"a\"]}}) { nodes { id } } }",
            "{ contacts(first: 5, filter: {email: {contains: null}}) { nodes { id } } }",
        ] {
            assert_ne!(a, shape(other), "{other}");
        }
        // Enum values are part of the shape; defaults of variables too.
        assert_ne!(
            shape("{ deals(filter: {status: {eq: OPEN}}) { nodes { id } } }"),
            shape("{ deals(filter: {status: {eq: WON}}) { nodes { id } } }")
        );
        assert_ne!(
            shape("query($n: Int = 1) { contacts(first: $n) { nodes { id } } }"),
            shape("query($n: Int = \"x\") { contacts(first: $n) { nodes { id } } }")
        );
        assert_ne!(
            shape("query($n: Int) { contacts(first: $n) { nodes { id } } }"),
            shape("query($n: String) { contacts(first: $n) { nodes { id } } }")
        );
    }
}
