//! Bounds on structured input: how deep, how wide and how large a JSON tree a client may
//! hand over.
//!
//! Recursive inputs — contact filters (in queries and saved as segments), sequence
//! conditions, GraphQL variables — are walked by code that recurses, and a deep enough
//! tree overflows a thread's stack and aborts the whole process. Every such input is
//! measured here first, by [`Bounds::check`], which keeps its own stack on the heap, so
//! the check itself cannot overflow however deep the tree is. Only a tree within its
//! bounds goes on to be parsed, stored or run.

use serde_json::Value;

use crate::error::{EngineError, Result};

/// How large a JSON tree may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Nesting of arrays and objects (a scalar at the top is depth 0).
    pub depth: usize,
    /// Values in all (arrays, objects and scalars).
    pub nodes: usize,
    /// Items of one array, members of one object.
    pub width: usize,
    /// Bytes of one string or object key.
    pub string_bytes: usize,
}

impl Bounds {
    /// Contact filters, in queries and in segments: six levels of `and`/`or`/`not` are
    /// more than any audience needs, and a few hundred conditions keep the SQL small
    /// enough for both databases (SQLite refuses expressions deeper than 1,000).
    pub const FILTER: Bounds = Bounds {
        depth: 16,
        nodes: 2_000,
        width: 500,
        string_bytes: 1_024,
    };

    /// A whole sequence definition (steps, triggers, and the conditions of branches and
    /// goals, which nest).
    pub const SEQUENCE: Bounds = Bounds {
        depth: 20,
        nodes: 20_000,
        width: 1_000,
        string_bytes: 64 * 1024,
    };

    /// The variables of one GraphQL request.
    pub const VARIABLES: Bounds = Bounds {
        depth: 20,
        nodes: 100_000,
        width: 10_000,
        string_bytes: 1024 * 1024,
    };

    /// Checks `value` against these bounds; `field` names the input in the error.
    pub fn check(&self, field: &str, value: &Value) -> Result<()> {
        let mut nodes = 0usize;
        // (value, its depth), walked depth-first with a stack of our own.
        let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
        while let Some((v, depth)) = stack.pop() {
            nodes += 1;
            if nodes > self.nodes {
                return Err(EngineError::invalid(
                    field,
                    format!("is too large (more than {} values)", self.nodes),
                ));
            }
            match v {
                Value::String(s) => self.string(field, s)?,
                Value::Array(items) => {
                    self.container(field, depth, items.len())?;
                    stack.extend(items.iter().map(|i| (i, depth + 1)));
                }
                Value::Object(members) => {
                    self.container(field, depth, members.len())?;
                    for (k, m) in members {
                        self.string(field, k)?;
                        stack.push((m, depth + 1));
                    }
                }
                Value::Null | Value::Bool(_) | Value::Number(_) => {}
            }
        }
        Ok(())
    }

    fn container(&self, field: &str, depth: usize, len: usize) -> Result<()> {
        if depth + 1 > self.depth {
            return Err(EngineError::invalid(
                field,
                format!("is nested too deeply (more than {} levels)", self.depth),
            ));
        }
        if len > self.width {
            return Err(EngineError::invalid(
                field,
                format!(
                    "has a list or object of {len} entries (at most {})",
                    self.width
                ),
            ));
        }
        Ok(())
    }

    fn string(&self, field: &str, s: &str) -> Result<()> {
        if s.len() > self.string_bytes {
            return Err(EngineError::invalid(
                field,
                format!(
                    "has a text of {} bytes (at most {})",
                    s.len(),
                    self.string_bytes
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn nested_not(depth: usize) -> Value {
        let mut v = json!({"email": {"eq": "a@example.com"}});
        for _ in 0..depth {
            v = json!({ "not": v });
        }
        v
    }

    #[test]
    fn deep_trees_are_refused_without_recursion() {
        // Built iteratively and far deeper than any thread's stack would survive walking
        // recursively.
        let mut v = Value::Null;
        for _ in 0..200_000 {
            v = Value::Array(vec![v]);
        }
        let e = Bounds::VARIABLES.check("variables", &v).unwrap_err();
        assert!(e.to_string().contains("nested too deeply"), "{e}");
        // Dropping such a tree recursively would overflow too; take it apart by hand.
        while let Value::Array(mut items) = v {
            v = items.pop().unwrap_or(Value::Null);
        }
    }

    #[test]
    fn filters_within_bounds_pass_and_others_name_the_limit() {
        assert!(Bounds::FILTER.check("filter", &nested_not(6)).is_ok());
        let e = Bounds::FILTER.check("filter", &nested_not(40)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "filter: is nested too deeply (more than 16 levels)"
        );
        let wide = json!({ "or": vec![json!({"id": {"eq": "1"}}); 501] });
        assert!(
            Bounds::FILTER
                .check("filter", &wide)
                .unwrap_err()
                .to_string()
                .contains("501 entries")
        );
        let long = json!({"email": {"contains": "x".repeat(2_000)}});
        assert!(
            Bounds::FILTER
                .check("filter", &long)
                .unwrap_err()
                .to_string()
                .contains("2000 bytes")
        );
        let many = json!({"and": vec![json!({"id": {"in": vec!["1"; 400]}}); 10]});
        assert!(
            Bounds::FILTER
                .check("filter", &many)
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
    }

    fn tree() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            ".{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(12, 200, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,4}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn depth(v: &Value) -> usize {
        match v {
            Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
            Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    proptest! {
        #[test]
        fn the_check_agrees_with_a_recursive_measure(v in tree(), limit in 0usize..14) {
            let bounds = Bounds { depth: limit, ..Bounds::VARIABLES };
            prop_assert_eq!(bounds.check("v", &v).is_ok(), depth(&v) <= limit);
        }
    }
}
