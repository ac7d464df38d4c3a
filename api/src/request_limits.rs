//! Measuring a GraphQL request before it is parsed: how deeply its document nests and how
//! large its variables are.
//!
//! async-graphql parses a document's values, and then turns them into typed inputs, by
//! recursion; so does our filter code. A document such as `{ contacts(filter: {not:
//! {not: … }}) }` nested a few hundred deep overflows a thread's stack and aborts the
//! process, so it is refused here first by a scan that keeps no stack at all. Variables
//! arrive as JSON (whose parser stops at 128 levels) and are measured by the engine's one
//! validator for structured input, [`Bounds`].

use async_graphql::Request;
use rapport_engine::EngineError;
use rapport_engine::input_limits::Bounds;

/// How deeply input values (`{`, `[` inside an argument list) may nest in a query
/// document: a filter within its own bounds ([`Bounds::FILTER`]) fits.
pub const MAX_VALUE_NESTING: usize = 20;

/// How deeply brackets may nest in a document overall (selections are held to 16 levels
/// by the schema; this leaves room for arguments).
pub const MAX_DOCUMENT_NESTING: usize = 64;

/// Bytes of a query document.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Checks the document and the variables of `request`.
pub fn check(request: &Request) -> Result<(), EngineError> {
    document(&request.query)?;
    // Variables are a map of JSON values; measured as one object.
    let variables = serde_json::to_value(&request.variables)
        .map_err(|_| EngineError::invalid("variables", "are not JSON"))?;
    Bounds::VARIABLES.check("variables", &variables)
}

/// Checks a document's size and bracket nesting, skipping strings, block strings and
/// comments (a bracket inside them is text).
pub fn document(query: &str) -> Result<(), EngineError> {
    if query.len() > MAX_DOCUMENT_BYTES {
        return Err(EngineError::invalid(
            "query",
            format!("the document is larger than {MAX_DOCUMENT_BYTES} bytes"),
        ));
    }
    let bytes = query.as_bytes();
    // Argument lists do not nest in GraphQL, so the depth at which the current one opened
    // is all that is needed to know how deep its values go.
    let (mut depth, mut args_at, mut i) = (0usize, None::<usize>, 0usize);
    let too_deep = |what: &str, max: usize| {
        Err(EngineError::invalid(
            "query",
            format!("the document's {what} nest deeper than {max} levels"),
        ))
    };
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    // `\"""` is an escaped delimiter inside a block string.
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                if bytes[i] == b'(' {
                    args_at = Some(depth);
                }
                depth += 1;
                if depth > MAX_DOCUMENT_NESTING {
                    return too_deep("brackets", MAX_DOCUMENT_NESTING);
                }
                if args_at.is_some_and(|at| depth.saturating_sub(at) > MAX_VALUE_NESTING + 1) {
                    return too_deep("input values", MAX_VALUE_NESTING);
                }
            }
            b'}' | b']' | b')' => {
                if bytes[i] == b')' {
                    args_at = None;
                }
                depth = depth.saturating_sub(1);
                // Unbalanced closers (the parser will refuse the document) must not leave
                // the argument list's start above the current depth.
                if args_at.is_some_and(|at| at > depth) {
                    args_at = None;
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nesting_is_counted_outside_strings_and_comments() {
        let deep = format!(
            "{{ contacts(filter: {}{}) {{ totalCount }} }}",
            "{not: ".repeat(60),
            "}".repeat(60)
        );
        let e = document(&deep).unwrap_err();
        assert!(
            e.to_string().contains("input values nest deeper than 20"),
            "{e}"
        );
        let fine = format!(
            "{{ contacts(filter: {}{}) {{ totalCount }} }}",
            "{not: ".repeat(8),
            "}".repeat(8)
        );
        assert!(document(&fine).is_ok());
        let selections = format!("{}{}", "{ a ".repeat(70), "}".repeat(70));
        assert!(
            document(&selections)
                .unwrap_err()
                .to_string()
                .contains("brackets")
        );
        let quoted = format!(
            "{{ contacts(filter: {{email: {{eq: \"{}\"}}}}) {{ totalCount }} }} # {}\n",
            "{".repeat(100),
            "[".repeat(100)
        );
        assert!(document(&quoted).is_ok());
        let block = format!(
            "{{ a(x: \"\"\" {} \\\"\"\" {} \"\"\") }}",
            "(".repeat(80),
            "[".repeat(80)
        );
        assert!(document(&block).is_ok());
    }

    proptest! {
        // Whatever the bytes, the scan ends and never panics.
        #[test]
        fn any_document_is_scanned_without_panicking(s in "[{}\\[\\]()\"\\\\#\na-z ]{0,400}") {
            let _ = document(&s);
        }
    }
}
