//! A document compiled into a plan: the fields it selects, in selection order, each
//! either a column written straight from a row, a relation loaded for all rows of its
//! level at once, or a connection. A document with anything else (a field of another
//! type, a directive, a mutation, a key selected twice) has no plan and runs on the
//! schema.

use async_graphql::Name;
use async_graphql::parser::Positioned;
use async_graphql::parser::types::{
    ExecutableDocument, Field as DocField, OperationType, Selection, SelectionSet,
};
use async_graphql_value::{ConstValue, Value};

use super::rows::{self, Column, Kind, Many, One};

/// Fragments nested deeper than this make a document plan-less (validation has refused
/// cycles already; this bounds the walk).
const MAX_FRAGMENT_DEPTH: usize = 16;

/// The most fields and argument values one plan holds: fragments are copied where they
/// are spread, so a short document could otherwise compile into a huge plan.
const MAX_PLAN_UNITS: usize = 50_000;

/// Takes `n` of the plan's units; `None` once they run out.
fn spend(units: &mut usize, n: usize) -> Option<()> {
    *units = units.checked_sub(n)?;
    Some(())
}

/// A value's size in units: one per scalar, list and object.
fn value_size(v: &Value) -> usize {
    match v {
        Value::List(items) => 1 + items.iter().map(value_size).sum::<usize>(),
        Value::Object(fields) => 1 + fields.values().map(value_size).sum::<usize>(),
        _ => 1,
    }
}

/// A response key, already written as a JSON string with its colon.
pub type Key = Box<str>;

/// A document's operation, ready to run for any variables.
#[derive(Debug)]
pub struct Plan {
    /// The operation's name (`None` for a document's only, unnamed one).
    pub name: Option<String>,
    /// The root fields, in selection order.
    pub roots: Vec<(Key, Root)>,
    /// The operation's variables and what each is when a request leaves it out (`None`:
    /// it must be given).
    pub variables: Vec<(Name, Option<ConstValue>)>,
    /// Its size: fields and argument values.
    pub units: usize,
}

/// A root field.
#[derive(Debug)]
pub enum Root {
    /// `__typename` of the query root.
    Typename,
    /// One row by its id (`contact(id:)`).
    ById {
        kind: Kind,
        id: Option<Value>,
        object: Object,
    },
    /// A page of a table (`contacts(first:, filter:)`).
    List { kind: Kind, args: Args, conn: Conn },
}

/// What is selected of an object.
#[derive(Debug, PartialEq)]
pub struct Object {
    pub kind: Kind,
    pub fields: Vec<(Key, Field)>,
}

/// A field of an object.
#[derive(Debug, PartialEq)]
pub enum Field {
    Typename,
    Column(Column),
    One(One, Object),
    Many(Many, Args, Conn),
}

/// What is selected of a connection; its node selection (at most one) is `node`.
#[derive(Debug, PartialEq)]
pub struct Conn {
    pub fields: Vec<(Key, ConnField)>,
    pub node: Object,
}

/// A field of a connection.
#[derive(Debug, PartialEq)]
pub enum ConnField {
    Typename,
    Edges(Vec<(Key, EdgeField)>),
    /// The nodes without their edges.
    Nodes,
    PageInfo(Vec<(Key, PageField)>),
}

/// A field of an edge.
#[derive(Debug, PartialEq)]
pub enum EdgeField {
    Typename,
    Cursor,
    Node,
}

/// A field of `pageInfo`.
#[derive(Debug, PartialEq)]
pub enum PageField {
    Typename,
    HasNextPage,
    HasPreviousPage,
    StartCursor,
    EndCursor,
}

/// A field's arguments as the document wrote them (variables resolved per request).
#[derive(Debug, Default, PartialEq)]
pub struct Args(pub Vec<(Name, Value)>);

impl Args {
    /// The argument `name`, if the document gives it.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v)
    }
}

/// The plan of `operation` (or the document's only one); `None` when it has none.
pub fn compile(doc: &ExecutableDocument, operation: Option<&str>) -> Option<Plan> {
    let (name, op) = doc.operations.iter().find(|(name, _)| match operation {
        Some(wanted) => name.is_some_and(|n| n.as_str() == wanted),
        None => true,
    })?;
    let op = &op.node;
    // The schema checks every operation of a document (variables, complexity), not only
    // the one it runs: a plan is made for documents of one operation.
    if op.ty != OperationType::Query
        || !op.directives.is_empty()
        || doc.operations.iter().count() != 1
    {
        return None;
    }
    let mut units = MAX_PLAN_UNITS;
    let units = &mut units;
    let variables = op
        .variable_definitions
        .iter()
        .map(|d| (d.node.name.node.clone(), d.node.default_value().cloned()))
        .collect();
    let mut roots = Vec::new();
    for field in fields(doc, &op.selection_set, "Query", 0)? {
        let f = &field.node;
        spend(units, 1)?;
        let root = match f.name.node.as_str() {
            "__typename" => Root::Typename,
            name @ ("contact" | "company" | "deal") => {
                let kind = by_id_kind(name);
                only_args(f, &["id"])?;
                Root::ById {
                    kind,
                    id: arg(f, "id"),
                    object: object(doc, kind, &f.selection_set, units)?,
                }
            }
            name @ ("contacts" | "companies" | "deals") => {
                let kind = list_kind(name);
                only_args(
                    f,
                    &["first", "after", "last", "before", "filter", "orderBy"],
                )?;
                Root::List {
                    kind,
                    args: args(f, units)?,
                    conn: conn(doc, kind, &f.selection_set, units)?,
                }
            }
            _ => return None,
        };
        roots.push((key(f), root));
    }
    Some(Plan {
        name: name.map(|n| n.to_string()),
        roots,
        variables,
        units: MAX_PLAN_UNITS - *units,
    })
}

fn by_id_kind(name: &str) -> Kind {
    match name {
        "contact" => Kind::Contact,
        "company" => Kind::Company,
        _ => Kind::Deal,
    }
}

fn list_kind(name: &str) -> Kind {
    match name {
        "contacts" => Kind::Contact,
        "companies" => Kind::Company,
        _ => Kind::Deal,
    }
}

fn object(
    doc: &ExecutableDocument,
    kind: Kind,
    set: &Positioned<SelectionSet>,
    units: &mut usize,
) -> Option<Object> {
    let mut out = Vec::new();
    for field in fields(doc, set, kind.name(), 0)? {
        let f = &field.node;
        spend(units, 1)?;
        let name = f.name.node.as_str();
        let planned = if name == "__typename" {
            Field::Typename
        } else if let Some(column) = rows::column(kind, name) {
            only_args(f, &[])?;
            Field::Column(column)
        } else if let Some((one, to)) = rows::one(kind, name) {
            only_args(f, &[])?;
            Field::One(one, object(doc, to, &f.selection_set, units)?)
        } else if let Some((many, of)) = rows::many(kind, name) {
            // Paging within one parent's list takes another path in the schema.
            only_args(f, &["first", "filter", "orderBy"])?;
            Field::Many(
                many,
                args(f, units)?,
                conn(doc, of, &f.selection_set, units)?,
            )
        } else {
            return None;
        };
        out.push((key(f), planned));
    }
    Some(Object { kind, fields: out })
}

fn conn(
    doc: &ExecutableDocument,
    kind: Kind,
    set: &Positioned<SelectionSet>,
    units: &mut usize,
) -> Option<Conn> {
    let type_name = format!("{}Connection", kind.name());
    let mut node = None;
    let mut out = Vec::new();
    for field in fields(doc, set, &type_name, 0)? {
        let f = &field.node;
        spend(units, 1)?;
        only_args(f, &[])?;
        let planned = match f.name.node.as_str() {
            "__typename" => ConnField::Typename,
            "edges" => {
                let mut edge = Vec::new();
                let edge_type = format!("{}Edge", kind.name());
                for field in fields(doc, &f.selection_set, &edge_type, 0)? {
                    let e = &field.node;
                    only_args(e, &[])?;
                    let planned = match e.name.node.as_str() {
                        "__typename" => EdgeField::Typename,
                        "cursor" => EdgeField::Cursor,
                        // One node selection per connection: the loads below it are
                        // made once.
                        "node" if node.is_none() => {
                            node = Some(object(doc, kind, &e.selection_set, units)?);
                            EdgeField::Node
                        }
                        _ => return None,
                    };
                    edge.push((key(e), planned));
                }
                ConnField::Edges(edge)
            }
            "nodes" if node.is_none() => {
                node = Some(object(doc, kind, &f.selection_set, units)?);
                ConnField::Nodes
            }
            "pageInfo" => {
                let mut info = Vec::new();
                for field in fields(doc, &f.selection_set, "PageInfo", 0)? {
                    let p = &field.node;
                    only_args(p, &[])?;
                    let planned = match p.name.node.as_str() {
                        "__typename" => PageField::Typename,
                        "hasNextPage" => PageField::HasNextPage,
                        "hasPreviousPage" => PageField::HasPreviousPage,
                        "startCursor" => PageField::StartCursor,
                        "endCursor" => PageField::EndCursor,
                        _ => return None,
                    };
                    info.push((key(p), planned));
                }
                ConnField::PageInfo(info)
            }
            _ => return None,
        };
        out.push((key(f), planned));
    }
    // Two `edges` would each need their own node loads.
    let edges = out
        .iter()
        .filter(|(_, f)| matches!(f, ConnField::Edges(_) | ConnField::Nodes))
        .count();
    if edges > 1 {
        return None;
    }
    Some(Conn {
        fields: out,
        node: node.unwrap_or(Object {
            kind,
            fields: Vec::new(),
        }),
    })
}

/// The fields of `set` on `type_name`, fragments spread in place; `None` when one has a
/// directive, a fragment is on another type, or a response key comes twice.
fn fields<'d>(
    doc: &'d ExecutableDocument,
    set: &'d Positioned<SelectionSet>,
    type_name: &str,
    depth: usize,
) -> Option<Vec<&'d Positioned<DocField>>> {
    if depth > MAX_FRAGMENT_DEPTH {
        return None;
    }
    let mut out: Vec<&Positioned<DocField>> = Vec::new();
    for item in &set.node.items {
        match &item.node {
            Selection::Field(f) => {
                if !f.node.directives.is_empty() {
                    return None;
                }
                out.push(f);
            }
            Selection::FragmentSpread(spread) => {
                let spread = &spread.node;
                let fragment = doc.fragments.get(&spread.fragment_name.node)?;
                if !spread.directives.is_empty()
                    || !fragment.node.directives.is_empty()
                    || fragment.node.type_condition.node.on.node.as_str() != type_name
                {
                    return None;
                }
                out.extend(fields(
                    doc,
                    &fragment.node.selection_set,
                    type_name,
                    depth + 1,
                )?);
            }
            Selection::InlineFragment(inline) => {
                let inline = &inline.node;
                if !inline.directives.is_empty()
                    || inline
                        .type_condition
                        .as_ref()
                        .is_some_and(|c| c.node.on.node.as_str() != type_name)
                {
                    return None;
                }
                out.extend(fields(doc, &inline.selection_set, type_name, depth + 1)?);
            }
        }
    }
    let mut keys: Vec<&str> = out.iter().map(|f| response_key(&f.node)).collect();
    keys.sort_unstable();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        return None;
    }
    Some(out)
}

fn response_key(f: &DocField) -> &str {
    f.alias.as_ref().unwrap_or(&f.name).node.as_str()
}

fn key(f: &DocField) -> Key {
    let mut out = serde_json::to_string(response_key(f)).unwrap_or_default();
    out.push(':');
    out.into_boxed_str()
}

/// `Some` when `f` has no argument but those `allowed`.
fn only_args(f: &DocField, allowed: &[&str]) -> Option<()> {
    f.arguments
        .iter()
        .all(|(name, _)| allowed.contains(&name.node.as_str()))
        .then_some(())
}

fn arg(f: &DocField, name: &str) -> Option<Value> {
    f.arguments
        .iter()
        .find(|(n, _)| n.node.as_str() == name)
        .map(|(_, v)| v.node.clone())
}

fn args(f: &DocField, units: &mut usize) -> Option<Args> {
    for (_, v) in &f.arguments {
        spend(units, value_size(&v.node))?;
    }
    Some(Args(
        f.arguments
            .iter()
            .map(|(n, v)| (n.node.clone(), v.node.clone()))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn plan(query: &str, operation: Option<&str>) -> Option<Plan> {
        compile(&parse_query(query).expect("parses"), operation)
    }

    #[test]
    fn reads_of_the_crm_graph_get_a_plan_in_selection_order() {
        let p = plan(
            "query Q($n: Int = 3) { b: contacts(first: $n) { edges { cursor node { ...F email } } pageInfo { endCursor } } __typename a: contact(id: 1) { company { name } } }
             fragment F on Contact { id name deals(first: 2) { nodes { stage { name } } } }",
            None,
        )
        .expect("a plan");
        let keys: Vec<&str> = p.roots.iter().map(|(k, _)| &**k).collect();
        assert_eq!(keys, ["\"b\":", "\"__typename\":", "\"a\":"]);
        assert_eq!(p.variables.len(), 1);
        let Root::List { conn, .. } = &p.roots[0].1 else {
            panic!("a list")
        };
        let node: Vec<&str> = conn.node.fields.iter().map(|(k, _)| &**k).collect();
        assert_eq!(node, ["\"id\":", "\"name\":", "\"deals\":", "\"email\":"]);
    }

    #[test]
    fn anything_else_runs_on_the_schema() {
        for query in [
            "mutation { deleteContact(id: 1) }",
            "{ contacts { totalCount } }",
            "{ contacts { edges { node { id @include(if: true) } } } }",
            "{ contacts { edges { node { id id: name } } } }",
            "{ contacts { edges { node { ... on Company { id } } } } }",
            "{ contacts { edges { node { id } } edges { cursor } } }",
            "{ contacts(orderByAttribute: {key: \"x\"}) { edges { node { id } } } }",
            "{ contacts { edges { node { deals(after: \"x\") { edges { node { id } } } } } } }",
            "{ contacts { edges { node { scores { value } } } } }",
            "{ contact(id: 1) { unsubscribeUrl } }",
            "{ viewer { workspaceName } }",
            "query A { __typename } query B { __typename }",
        ] {
            assert!(plan(query, None).is_none(), "{query}");
        }
        // The schema checks every operation of a document: a plan only for documents of one.
        assert!(plan("query A { __typename } query B { __typename }", Some("A")).is_none());
        assert!(plan("query A { __typename }", Some("A")).is_some());
        assert!(plan("query A { __typename }", Some("C")).is_none());
    }

    #[test]
    fn fragments_spread_past_the_size_bound_make_no_plan() {
        // 20 x 20 x 20 spreads of a field with a 100-value argument: a short document, a
        // plan of some 800,000 values.
        let list: Vec<String> = (0..100).map(|i| format!("\"x{i}\"")).collect();
        let aliases = |prefix: &str, spread: &str| -> String {
            (0..20)
                .map(|i| format!("{prefix}{i}: company {{ ...{spread} }} "))
                .collect()
        };
        let many = |prefix: &str, spread: &str| -> String {
            (0..20)
                .map(|i| format!("{prefix}{i}: contacts(first: 1) {{ nodes {{ ...{spread} }} }} "))
                .collect()
        };
        let doc = format!(
            "{{ contact(id: 1) {{ {} }} }}
             fragment B on Company {{ {} }}
             fragment C on Contact {{ {} }}
             fragment D on Company {{ deals(first: 1, filter: {{name: {{in: [{}]}}}}) {{ nodes {{ id }} }} }}",
            aliases("a", "B"),
            many("b", "C"),
            aliases("c", "D"),
            list.join(", ")
        );
        assert!(doc.len() < 10_000);
        assert!(plan(&doc, None).is_none());
    }
}
