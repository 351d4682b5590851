//! A linear-time bound on how large a GraphQL document becomes once its
//! fragments are inlined. async-graphql's own checks (recursion depth,
//! depth, complexity) walk the document with every fragment spread
//! expanded, which takes exponential time on a "fragment bomb" (each
//! fragment spreading the next one several times) or a self-spreading
//! fragment. This check runs first, sizes each fragment once, and refuses
//! such documents before they cost anything.

use std::collections::HashMap;

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
