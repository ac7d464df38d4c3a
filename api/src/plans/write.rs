//! Writing a loaded plan as the response's JSON, in selection order, straight from the
//! rows: no value tree is built on the way.

use rapport_engine::platform::pagination::Page;

use super::compile::{Conn, ConnField, EdgeField, Field, Object, PageField, Plan, Root};
use super::load::{Loaded, LoadedObject, LoadedRoot};
use super::rows::{self, Row, text};

/// `{"data":{…}}` of `plan`, from what its roots loaded.
pub fn response(plan: &Plan, loaded: &[LoadedRoot]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"data\":{");
    for (i, ((key, root), loaded)) in plan.roots.iter().zip(loaded).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key.as_bytes());
        match (root, loaded) {
            (Root::ById { object, .. }, LoadedRoot::One(row, below)) => {
                write_object(&mut out, object, below, row)
            }
            (Root::List { conn, .. }, LoadedRoot::Page(page, below)) => {
                write_conn(&mut out, conn, page, below)
            }
            // The merged query root's name.
            _ => text(&mut out, "Queries"),
        }
    }
    out.extend_from_slice(b"}}");
    out
}

fn write_object(out: &mut Vec<u8>, object: &Object, loaded: &LoadedObject, row: &Row) {
    out.push(b'{');
    for (i, ((key, field), loaded)) in object.fields.iter().zip(&loaded.0).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key.as_bytes());
        match (field, loaded) {
            (Field::Column(column), _) => rows::write_column(out, row, *column),
            (Field::One(one, sub), Loaded::One(found, below)) => {
                match row.points_at(*one).and_then(|id| found.get(&id)) {
                    Some(target) => write_object(out, sub, below, target),
                    None => out.extend_from_slice(b"null"),
                }
            }
            (Field::Many(_, _, conn), Loaded::Many(pages, below)) => match pages.get(&row.id()) {
                Some(page) => write_conn(out, conn, page, below),
                None => write_conn(out, conn, &Page::empty(), below),
            },
            _ => text(out, object.kind.name()),
        }
    }
    out.push(b'}');
}

fn write_conn(out: &mut Vec<u8>, conn: &Conn, page: &Page<Row>, below: &LoadedObject) {
    let kind = conn.node.kind.name();
    out.push(b'{');
    for (i, (key, field)) in conn.fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key.as_bytes());
        match field {
            ConnField::Typename => text(out, &format!("{kind}Connection")),
            ConnField::Nodes => {
                out.push(b'[');
                for (j, (_, row)) in page.edges.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    write_object(out, &conn.node, below, row);
                }
                out.push(b']');
            }
            ConnField::Edges(edge) => {
                out.push(b'[');
                for (j, (cursor, row)) in page.edges.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    out.push(b'{');
                    for (k, (key, field)) in edge.iter().enumerate() {
                        if k > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(key.as_bytes());
                        match field {
                            EdgeField::Typename => text(out, &format!("{kind}Edge")),
                            EdgeField::Cursor => text(out, &cursor.encode()),
                            EdgeField::Node => write_object(out, &conn.node, below, row),
                        }
                    }
                    out.push(b'}');
                }
                out.push(b']');
            }
            ConnField::PageInfo(info) => {
                out.push(b'{');
                for (k, (key, field)) in info.iter().enumerate() {
                    if k > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(key.as_bytes());
                    let cursor =
                        |edge: Option<&(rapport_engine::platform::pagination::Cursor, Row)>| {
                            edge.map(|(c, _)| c.encode())
                        };
                    match field {
                        PageField::Typename => text(out, "PageInfo"),
                        PageField::HasNextPage => flag(out, page.has_next_page),
                        PageField::HasPreviousPage => flag(out, page.has_previous_page),
                        PageField::StartCursor => opt(out, cursor(page.edges.first())),
                        PageField::EndCursor => opt(out, cursor(page.edges.last())),
                    }
                }
                out.push(b'}');
            }
        }
    }
    out.push(b'}');
}

fn flag(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

fn opt(out: &mut Vec<u8>, s: Option<String>) {
    match s {
        Some(s) => text(out, &s),
        None => out.extend_from_slice(b"null"),
    }
}
