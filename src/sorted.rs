//! Sorted collections built without `collect()`.
//!
//! `collect()` into a `BTreeMap`, a `BTreeSet` or serde_json's `Map` sorts
//! a `Vec` of the items first, with the stable sort, and every item type
//! then carries its own copy of that sort: about 6 KB of binary apiece, a
//! dozen of them ~70 KB of berth. Inserting one by one needs only the
//! tree's own insert, which each of these types has anyway; the collections
//! built here hold a handful of entries.

/// `items` inserted one by one into a new collection.
pub fn inserted<C: Default + Extend<T>, T>(items: impl IntoIterator<Item = T>) -> C {
    let mut c = C::default();
    c.extend(items);
    c
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    #[test]
    fn same_as_collect() {
        let words = ["b", "a", "c", "a"];
        let set: BTreeSet<&str> = inserted(words);
        assert_eq!(set, words.into_iter().collect::<BTreeSet<_>>());
        let map: BTreeMap<&str, usize> = inserted(words.iter().map(|w| (*w, w.len())));
        assert_eq!(map.keys().copied().collect::<Vec<_>>(), ["a", "b", "c"]);
        let json: serde_json::Map<String, serde_json::Value> =
            inserted([("z".to_string(), 1.into()), ("y".to_string(), 2.into())]);
        assert_eq!(
            serde_json::Value::Object(json).to_string(),
            r#"{"y":2,"z":1}"#
        );
    }
}
