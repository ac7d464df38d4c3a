//! Answers in the order of the selection. The GraphQL spec's response maps are ordered:
//! a field comes where the request asked for it. async-graphql resolves the fields of an
//! object concurrently and writes each as it completes, so a field that waits on the
//! database (`totalCount`) lands after one that does not (`pageInfo`). This puts every
//! object of `data` back in the order of the document, fragments expanded in place.

use async_graphql::Value;
use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::parser::{Positioned, parse_query};

/// Objects nested deeper than this are left as they came: the request limits refuse
/// documents this deep long before, so this only bounds the walk itself.
const MAX_DEPTH: usize = 64;

/// Reorders the objects of `data` as `query` (its operation `operation`, or its only one)
/// selected them. A document that does not parse, or names no such operation, leaves
/// `data` as it is (such a request did not run, so it has no data).
pub fn in_selection_order(query: &str, operation: Option<&str>, data: &mut Value) {
    if !matches!(data, Value::Object(_)) {
        return;
    }
    let Ok(doc) = parse_query(query) else {
        return;
    };
    let op = doc.operations.iter().find(|(name, _)| match operation {
        Some(wanted) => name.is_some_and(|n| n.as_str() == wanted),
        None => true,
    });
    let Some((_, op)) = op else {
        return;
    };
    // A subscription's answers are events, not this response.
    if op.node.ty == OperationType::Subscription {
        return;
    }
    reorder(&doc, &[&op.node.selection_set], data, 0);
}

fn reorder(
    doc: &ExecutableDocument,
    sets: &[&Positioned<SelectionSet>],
    value: &mut Value,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::List(items) => {
            for item in items {
                reorder(doc, sets, item, depth + 1);
            }
        }
        Value::Object(map) => {
            let mut keys: IndexMap<&str, Vec<&Positioned<SelectionSet>>> = IndexMap::new();
            for set in sets {
                collect(doc, set, &mut keys, 0);
            }
            let mut old = std::mem::take(map);
            for (key, children) in &keys {
                if let Some((name, mut child)) = old.shift_remove_entry(*key) {
                    reorder(doc, children, &mut child, depth + 1);
                    map.insert(name, child);
                }
            }
            // Anything the walk did not name keeps its place after the rest.
            map.extend(old);
        }
        _ => {}
    }
}

/// The response keys of `set` in document order, fragments expanded where they stand, each
/// with the selection sets of its fields (one key may be selected more than once).
fn collect<'d>(
    doc: &'d ExecutableDocument,
    set: &'d Positioned<SelectionSet>,
    keys: &mut IndexMap<&'d str, Vec<&'d Positioned<SelectionSet>>>,
    depth: usize,
) {
    // Fragment cycles fail validation before anything runs; this bounds the walk anyway.
    if depth > MAX_DEPTH {
        return;
    }
    for item in &set.node.items {
        match &item.node {
            Selection::Field(f) => {
                let key = f.node.response_key().node.as_str();
                keys.entry(key).or_default().push(&f.node.selection_set);
            }
            Selection::FragmentSpread(spread) => {
                let name = &spread.node.fragment_name.node;
                if let Some(fragment) = doc.fragments.get(name) {
                    collect(doc, &fragment.node.selection_set, keys, depth + 1);
                }
            }
            Selection::InlineFragment(inline) => {
                collect(doc, &inline.node.selection_set, keys, depth + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::Name;

    fn keys(v: &Value) -> Vec<String> {
        match v {
            Value::Object(m) => m.keys().map(|k| k.to_string()).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn objects_follow_the_document_with_fragments_in_place() {
        let query = "query Q { page { total ...Info nodes { b a } } } \
                     fragment Info on Page { info: pageInfo { end has } }";
        let mut data = Value::from_json(serde_json::json!({
            "page": {
                "nodes": [{"a": 1, "b": 2}, {"a": 3, "b": 4}],
                "info": {"has": true, "end": "x"},
                "total": 2
            }
        }))
        .unwrap();
        in_selection_order(query, Some("Q"), &mut data);
        let Value::Object(top) = &data else { panic!() };
        let page = &top[&Name::new("page")];
        assert_eq!(keys(page), ["total", "info", "nodes"]);
        let Value::Object(p) = page else { panic!() };
        assert_eq!(keys(&p[&Name::new("info")]), ["end", "has"]);
        let Value::List(nodes) = &p[&Name::new("nodes")] else {
            panic!()
        };
        assert!(nodes.iter().all(|n| keys(n) == ["b", "a"]));
    }

    #[test]
    fn a_document_that_does_not_parse_leaves_the_data_alone() {
        let mut data = Value::from_json(serde_json::json!({"b": 1, "a": 2})).unwrap();
        let before = keys(&data);
        in_selection_order("{ b a", None, &mut data);
        assert_eq!(keys(&data), before);
        in_selection_order("{ b a }", Some("Missing"), &mut data);
        assert_eq!(keys(&data), before);
    }
}
