//! A linear-time bound on how large a GraphQL document becomes once its
//! fragments are inlined. async-graphql's own checks (recursion depth,
//! depth, complexity) walk the document with every fragment spread
//! expanded, which takes exponential time on a "fragment bomb" (each
//! fragment spreading the next one several times) or a self-spreading
//! fragment. This check runs first, sizes each fragment once, and refuses
//! such documents before they cost anything.

use std::collections::HashMap;

use crate::validation::MAX_PAGE_SIZE;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// Most selections (fields, spreads, inline fragments) a document may
/// expand to. Far above what the default complexity limit lets through (every
/// field costs at least one point), so it only stops abuse.
pub const MAX_INLINED_SELECTIONS: usize = 2_000;

/// Deepest nesting of selection sets and fragment spreads, as in
/// async-graphql's default recursion limit. It also bounds this walk's
/// own recursion.
pub const MAX_NESTING: usize = 32;

/// Refuses documents that are too large once inlined or that spread a
/// fragment inside itself; the message suits a GraphQL error.
pub fn check(document: &ExecutableDocument) -> Result<(), String> {
    let mut sizer = Sizer {
        document,
        fragments: HashMap::new(),
    };
    let mut total = 0usize;
    for (_, operation) in document.operations.iter() {
        let size = sizer.selection_set(&operation.node.selection_set.node, 0)?;
        total = total.saturating_add(size);
        if total > MAX_INLINED_SELECTIONS {
            return Err(too_complex());
        }
    }
    Ok(())
}

enum Memo {
    /// Being sized: meeting it again means it spreads itself.
    InProgress,
    Done(usize),
}

struct Sizer<'a> {
    document: &'a ExecutableDocument,
    fragments: HashMap<&'a str, Memo>,
}

impl<'a> Sizer<'a> {
    fn selection_set(&mut self, set: &'a SelectionSet, nesting: usize) -> Result<usize, String> {
        if nesting > MAX_NESTING {
            return Err(format!(
                "The recursion depth of the query cannot be greater than `{MAX_NESTING}`"
            ));
        }
        let mut total = 0usize;
        for selection in &set.items {
            let inner = match &selection.node {
                Selection::Field(field) => {
                    self.selection_set(&field.node.selection_set.node, nesting + 1)?
                }
                Selection::InlineFragment(fragment) => {
                    self.selection_set(&fragment.node.selection_set.node, nesting + 1)?
                }
                Selection::FragmentSpread(spread) => {
                    self.fragment(spread.node.fragment_name.node.as_str(), nesting + 1)?
                }
            };
            total = total.saturating_add(1).saturating_add(inner);
            if total > MAX_INLINED_SELECTIONS {
                return Err(too_complex());
            }
        }
        Ok(total)
    }

    fn fragment(&mut self, name: &'a str, nesting: usize) -> Result<usize, String> {
        match self.fragments.get(name) {
            Some(Memo::Done(size)) => return Ok(*size),
            Some(Memo::InProgress) => {
                return Err(format!("Cannot spread fragment \"{name}\" within itself"));
            }
            None => {}
        }
        // An unknown fragment adds nothing here; validation reports it.
        let Some(definition) = self.document.fragments.get(name) else {
            return Ok(0);
        };
        self.fragments.insert(name, Memo::InProgress);
        let size = self.selection_set(&definition.node.selection_set.node, nesting)?;
        self.fragments.insert(name, Memo::Done(size));
        Ok(size)
    }
}

/// Complexity points of a field that calls a dependency (the Cinema,
/// User or Payment service, the store, the event log), on top of one
/// point per field: such fields cost a round trip, not a struct read, so
/// a document may hold about 20 of them under the default limit of 500
/// (160 aliased `showtimeSeats` fitted before).
pub const DEPENDENCY_CALL: usize = 20;

/// Most events one booking has (created, a decision, refunded, payment
/// refunded): the page size of the `events` lists.
pub const EVENTS_PER_BOOKING: usize = 4;

/// The cost of a paged list field: its children once per item it may
/// answer, `first` clamped to the page sizes accepted.
pub fn page(first: i32, child_complexity: usize) -> usize {
    let items = first.clamp(1, MAX_PAGE_SIZE as i32) as usize;
    DEPENDENCY_CALL.saturating_add(items.saturating_mul(child_complexity))
}

/// The cost of a booking's events: one event-log call, up to
/// `EVENTS_PER_BOOKING` events.
pub fn events(child_complexity: usize) -> usize {
    DEPENDENCY_CALL.saturating_add(EVENTS_PER_BOOKING.saturating_mul(child_complexity))
}

/// The cost of any other field that calls a dependency.
pub fn dependency_call(child_complexity: usize) -> usize {
    DEPENDENCY_CALL.saturating_add(child_complexity)
}

/// Deepest nesting of brackets (`{`, `[`, `(`) a document's text may
/// have. Far above what the parser and `MAX_NESTING` let through for
/// selections; it exists for values: the parser recurses once per level
/// of a literal like `[[[…]]]` without a bound, so a deep one overflowed
/// the stack (aborting the process) before any other check ran.
pub const MAX_TEXT_NESTING: usize = 128;

/// Refuses a document whose brackets nest deeper than `MAX_TEXT_NESTING`,
/// in one pass over the text, before it is parsed. Brackets in strings
/// and comments do not count; malformed text is left to the parser.
pub fn check_nesting(text: &str) -> Result<(), String> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.starts_with(br#"""""#) {
            // A block string ends at the next `"""` not escaped as `\"""`.
            at += 3;
            while at < bytes.len() && !bytes[at..].starts_with(br#"""""#) {
                at += if bytes[at..].starts_with(br#"\""""#) {
                    4
                } else {
                    1
                };
            }
            at += 3;
            continue;
        }
        match rest[0] {
            b'"' => {
                at += 1;
                while at < bytes.len() && !matches!(bytes[at], b'"' | b'\n' | b'\r') {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
            }
            b'#' => {
                while at < bytes.len() && !matches!(bytes[at], b'\n' | b'\r') {
                    at += 1;
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_TEXT_NESTING {
                    return Err(format!(
                        "the document nests brackets more than {MAX_TEXT_NESTING} deep"
                    ));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    Ok(())
}

fn too_complex() -> String {
    "Query is too complex.".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn check_text(text: &str) -> Result<(), String> {
        check(&parse_query(text).expect("parses"))
    }

    #[test]
    fn ordinary_documents_pass() {
        assert!(check_text("{ a b { c d } ...F } fragment F on Q { e f }").is_ok());
    }

    #[test]
    fn a_fragment_bomb_is_refused_quickly() {
        // F0 spreads F1 three times, F1 spreads F2 three times, ...:
        // 3^12 leaves from a document of a few hundred bytes.
        let mut text = String::from("{ ...F0 }");
        for level in 0..12 {
            text.push_str(&format!(
                " fragment F{level} on Q {{ a: x {{ ...F{next} }} b: x {{ ...F{next} }} c: x {{ ...F{next} }} }}",
                next = level + 1
            ));
        }
        text.push_str(" fragment F12 on Q { leaf }");
        let error = check_text(&text).unwrap_err();
        assert_eq!(error, "Query is too complex.");
    }

    #[test]
    fn a_self_spreading_fragment_is_refused() {
        let error = check_text("{ ...A } fragment A on Q { x ...B ...B } fragment B on Q { ...A }")
            .unwrap_err();
        assert!(error.contains("within itself"), "{error}");
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused() {
        let mut text = String::from("{ ...F0 }");
        for level in 0..40 {
            text.push_str(&format!(" fragment F{level} on Q {{ ...F{} }}", level + 1));
        }
        text.push_str(" fragment F40 on Q { leaf }");
        let error = check_text(&text).unwrap_err();
        assert!(error.contains("recursion depth"), "{error}");
    }

    #[test]
    fn deeply_nested_text_is_refused_before_parsing() {
        let deep =
            |depth: usize| format!("{{ f(a: {}1{}) }}", "[".repeat(depth), "]".repeat(depth));
        assert!(check_nesting(&deep(MAX_TEXT_NESTING - 2)).is_ok());
        assert!(check_nesting(&deep(MAX_TEXT_NESTING - 1)).is_err());
        assert!(check_nesting(&deep(100_000)).is_err());
        let quoted = format!(
            "{{ f(a: \"{0}\", b: \"\"\"{0}\\\"\"\"{0}\"\"\") }} # {0}",
            "[".repeat(1_000)
        );
        assert!(
            check_nesting(&quoted).is_ok(),
            "brackets in strings and comments"
        );
    }

    #[test]
    fn wide_documents_beyond_the_bound_are_refused() {
        let fields: Vec<String> = (0..MAX_INLINED_SELECTIONS + 1)
            .map(|i| format!("f{i}: x"))
            .collect();
        assert!(check_text(&format!("{{ {} }}", fields.join(" "))).is_err());
        let fields: Vec<String> = (0..MAX_INLINED_SELECTIONS)
            .map(|i| format!("f{i}: x"))
            .collect();
        assert!(check_text(&format!("{{ {} }}", fields.join(" "))).is_ok());
    }
}
