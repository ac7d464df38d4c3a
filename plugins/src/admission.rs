//! What a component must be before it is compiled.
//!
//! Compiling is the expensive step: a hostile 100 kB component of deeply nested blocks
//! costs Cranelift seconds and a gigabyte, and a larger one minutes. So everything that can
//! be refused from the bytes alone — size, shape, the world's imports and exports — is
//! refused here, in one pass over the bytes, before [`crate::Runtime`] compiles anything.

use std::borrow::Cow;
use std::collections::HashSet;

use wasmparser::{Encoding, Operator, Parser, Payload};

use crate::error::Error;

/// The largest component accepted, in bytes (an interpreter such as CPython compiled to a
/// component is about 18 MB).
pub const MAX_COMPONENT_BYTES: usize = 40 << 20;
/// Functions across all of a component's core modules.
pub const MAX_FUNCTIONS: u32 = 200_000;
/// Bytes of one function's body.
pub const MAX_FUNCTION_BYTES: usize = 4 << 20;
/// Locals of one function.
pub const MAX_LOCALS: u32 = 50_000;
/// Blocks, loops and ifs nested inside one another in a function. Compilers rarely nest
/// beyond a few dozen; the cost of compiling grows with the depth.
pub const MAX_NESTING: u32 = 1_000;
/// Core modules and nested components in one component.
pub const MAX_MODULES: u32 = 256;

/// The exports of the plugin world (`plugins/wit/plugin.wit`).
const EXPORTS: [&str; 3] = ["describe", "score", "next-best-actions"];
/// The interfaces the host provides, by package prefix.
const IMPORTS: [&str; 2] = ["wasi:", "rapport:plugin/"];

/// The component's binary form, if it may be compiled: WAT text is converted first, and
/// anything over a cap, a core module, an import the host lacks or a missing export of the
/// plugin world is refused with an error naming it.
pub(crate) fn admit(wasm: &[u8]) -> Result<Cow<'_, [u8]>, Error> {
    if wasm.len() > MAX_COMPONENT_BYTES {
        return Err(Error::TooLarge(format!(
            "{} bytes, at most {MAX_COMPONENT_BYTES} accepted",
            wasm.len()
        )));
    }
    let binary = if wasm.starts_with(b"\0asm") {
        Cow::Borrowed(wasm)
    } else {
        Cow::Owned(
            wat::parse_bytes(wasm)
                .map_err(|e| Error::NotAComponent(format!("neither WebAssembly nor WAT: {e}")))?
                .into_owned(),
        )
    };
    if binary.len() > MAX_COMPONENT_BYTES {
        return Err(Error::TooLarge(format!(
            "{} bytes once assembled, at most {MAX_COMPONENT_BYTES} accepted",
            binary.len()
        )));
    }
    scan(&binary)?;
    Ok(binary)
}

/// One pass over every payload, nested modules and components included.
fn scan(binary: &[u8]) -> Result<(), Error> {
    let malformed = |e: wasmparser::BinaryReaderError| Error::NotAComponent(e.to_string());
    let mut depth = 0u32;
    let mut modules = 0u32;
    let mut functions = 0u32;
    let mut exports = HashSet::new();
    for payload in Parser::new(0).parse_all(binary) {
        match payload.map_err(malformed)? {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding == Encoding::Module {
                    return Err(Error::NotAComponent(
                        "this is a core WebAssembly module; build a component (target \
                         wasm32-wasip2, or `wasm-tools component new`)"
                            .into(),
                    ));
                }
                depth += 1;
                modules += 1;
                if modules > MAX_MODULES {
                    return Err(Error::TooLarge(format!(
                        "more than {MAX_MODULES} modules and components"
                    )));
                }
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(imports) if depth == 1 => {
                for import in imports {
                    let import = import.map_err(malformed)?;
                    let name = import.name.name;
                    // The world's own types (`input`, `action`) are imported by plain name.
                    let is_type = matches!(import.ty, wasmparser::ComponentTypeRef::Type(_));
                    if !is_type && !IMPORTS.iter().any(|p| name.starts_with(p)) {
                        return Err(Error::MissingImport(format!(
                            "the component imports `{}`, which the host does not provide \
                             (only WASI and rapport:plugin)",
                            crate::error::excerpt(name)
                        )));
                    }
                }
            }
            Payload::ComponentExportSection(list) if depth == 1 => {
                for export in list {
                    let name = export.map_err(malformed)?.name.name;
                    if EXPORTS.contains(&name) {
                        exports.insert(name);
                    }
                }
            }
            Payload::CodeSectionStart { count, .. } => {
                functions = functions.saturating_add(count);
                if functions > MAX_FUNCTIONS {
                    return Err(Error::TooLarge(format!(
                        "more than {MAX_FUNCTIONS} functions"
                    )));
                }
            }
            Payload::CodeSectionEntry(body) => function(&body).map_err(|e| match e {
                Shape::Malformed(e) => malformed(e),
                Shape::Over(what) => Error::TooLarge(what),
            })?,
            _ => {}
        }
    }
    let missing: Vec<&str> = EXPORTS
        .iter()
        .copied()
        .filter(|e| !exports.contains(e))
        .collect();
    if !missing.is_empty() {
        return Err(Error::WrongWorld(format!(
            "the component does not export {}: build it against the world `plugin` of \
             plugins/wit/plugin.wit",
            missing.join(", ")
        )));
    }
    Ok(())
}

enum Shape {
    Malformed(wasmparser::BinaryReaderError),
    Over(String),
}

impl From<wasmparser::BinaryReaderError> for Shape {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        Shape::Malformed(e)
    }
}

/// A function's size, locals and deepest nesting within the caps.
fn function(body: &wasmparser::FunctionBody<'_>) -> Result<(), Shape> {
    let size = body.range().len();
    if size > MAX_FUNCTION_BYTES {
        return Err(Shape::Over(format!(
            "a function of {size} bytes, at most {MAX_FUNCTION_BYTES} accepted"
        )));
    }
    let mut locals = 0u32;
    for group in body.get_locals_reader()? {
        let (count, _) = group?;
        locals = locals.saturating_add(count);
    }
    if locals > MAX_LOCALS {
        return Err(Shape::Over(format!(
            "a function with {locals} locals, at most {MAX_LOCALS} accepted"
        )));
    }
    let mut reader = body.get_operators_reader()?;
    let mut nesting = 0u32;
    while !reader.eof() {
        match reader.read()? {
            Operator::Block { .. }
            | Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::Try { .. }
            | Operator::TryTable { .. } => {
                nesting += 1;
                if nesting > MAX_NESTING {
                    return Err(Shape::Over(format!(
                        "blocks nested more than {MAX_NESTING} deep"
                    )));
                }
            }
            Operator::End | Operator::Delegate { .. } => nesting = nesting.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!(
            "(component (core module (func {} {})))",
            "(block ".repeat(depth),
            ")".repeat(depth)
        )
    }

    #[test]
    fn deep_nesting_is_refused_before_compiling() {
        let err = admit(nested(MAX_NESTING as usize + 1).as_bytes()).unwrap_err();
        assert!(
            matches!(&err, Error::TooLarge(m) if m.contains("nested")),
            "{err}"
        );
        // At the cap the shape passes; the world check is what refuses this one.
        let err = admit(nested(MAX_NESTING as usize).as_bytes()).unwrap_err();
        assert!(matches!(err, Error::WrongWorld(_)), "{err}");
    }

    #[test]
    fn oversized_and_foreign_components_are_refused() {
        let big = vec![0u8; MAX_COMPONENT_BYTES + 1];
        assert!(matches!(admit(&big), Err(Error::TooLarge(_))));
        let err = admit(br#"(component (import "evil:net/socket" (func)))"#).unwrap_err();
        assert!(matches!(&err, Error::MissingImport(m) if m.contains("evil:net/socket")));
        let err = admit(b"(module)").unwrap_err();
        assert!(matches!(err, Error::NotAComponent(_)), "{err}");
        let err = admit(b"(component)").unwrap_err();
        assert!(
            matches!(&err, Error::WrongWorld(m) if m.contains("describe, score, next-best-actions")),
            "{err}"
        );
    }

    #[test]
    fn too_many_locals_are_refused() {
        let wat = format!(
            "(component (core module (func (local {}))))",
            "i32 ".repeat(MAX_LOCALS as usize + 1)
        );
        let err = admit(wat.as_bytes()).unwrap_err();
        assert!(
            matches!(&err, Error::TooLarge(m) if m.contains("locals")),
            "{err}"
        );
    }
}
