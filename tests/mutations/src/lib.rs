//! Random values and mutations for the fuzz tests: JSON values of every type, and a valid
//! message changed by a few JSON-level mutations and then a few byte-level ones.
//!
//! JSON-level mutations keep the text JSON, so they reach the checks past the parser (a
//! missing field, a field of the wrong type, an unknown one); byte-level ones reach the
//! parser itself. Each test brings its own words and field names, so that a mutation now
//! and then lands on a near miss of a valid message rather than always on noise.

use std::ops::Range;

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value};

/// A JSON value of any type, nested up to two levels. `words` are string values the
/// messages under test use, and near misses of them: a replacement is then now and then
/// still valid, or only just not.
pub fn any_json_value(words: &'static [&'static str]) -> impl Strategy<Value = Value> + Clone {
    let words: &'static [&'static str] = if words.is_empty() { &[""] } else { words };
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        // ports, VLANs and small counts: values that pass a range check now and then
        (0u64..70_000).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(words).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "[a-z_]{0,12}\\PC{0,3}".prop_map(Value::from),
        // a near miss with a control character in it: a forged log line
        "[a-z_]{0,8}[\\x00-\\x1f\\x7f][a-z_]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Some JSON-level mutations (`json` of them) and then some byte-level ones (`bytes` of
/// them), for [`Mutations::apply`]. Replacements and added values come from
/// [`any_json_value`] with `words`; added fields are named from `fields` (so that they
/// overwrite one the message has now and then) or at random.
pub fn mutations(
    words: &'static [&'static str],
    fields: &'static [&'static str],
    json: Range<usize>,
    bytes: Range<usize>,
) -> impl Strategy<Value = Mutations> {
    (
        prop::collection::vec(json_mutation(words, fields), json),
        prop::collection::vec(byte_mutation(), bytes),
    )
        .prop_map(|(json, bytes)| Mutations { json, bytes })
}

/// What [`mutations`] makes: JSON-level mutations, then byte-level ones.
#[derive(Clone, Debug)]
pub struct Mutations {
    json: Vec<JsonMutation>,
    bytes: Vec<ByteMutation>,
}

impl Mutations {
    /// `value` changed by the JSON-level mutations, encoded, then changed by the byte-level
    /// ones. A mutation that does not fit (a field dropped from a number, a byte flipped in
    /// nothing) changes nothing.
    pub fn apply(&self, mut value: Value) -> Vec<u8> {
        for mutation in &self.json {
            mutate_json(&mut value, mutation);
        }
        let mut bytes = serde_json::to_vec(&value).expect("a JSON value encodes");
        for mutation in &self.bytes {
            mutate_bytes(&mut bytes, mutation);
        }
        bytes
    }
}

/// Where each `Index` points is decided against the value it is applied to, so that a
/// mutation fits whatever the ones before it left.
#[derive(Clone, Debug)]
enum JsonMutation {
    /// The node becomes another value, usually of another type.
    Replace(Index, Value),
    /// A field of the object at the node goes missing.
    Drop(Index, Index),
    /// The object at the node gains a field (or one it has changes).
    Add(Index, String, Value),
}

#[derive(Clone, Debug)]
enum ByteMutation {
    Flip(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
    /// The same bytes twice: a duplicated key, a duplicated value, two documents.
    Duplicate(Index, Index),
}

fn json_mutation(
    words: &'static [&'static str],
    fields: &'static [&'static str],
) -> impl Strategy<Value = JsonMutation> {
    let random_field = "[a-z_]{1,16}";
    let field = if fields.is_empty() {
        random_field.boxed()
    } else {
        prop_oneof![
            prop::sample::select(fields).prop_map(String::from),
            random_field,
        ]
        .boxed()
    };
    prop_oneof![
        3 => (any::<Index>(), any_json_value(words))
            .prop_map(|(at, v)| JsonMutation::Replace(at, v)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(at, f)| JsonMutation::Drop(at, f)),
        1 => (any::<Index>(), field, any_json_value(words))
            .prop_map(|(at, k, v)| JsonMutation::Add(at, k, v)),
    ]
}

fn byte_mutation() -> impl Strategy<Value = ByteMutation> {
    prop_oneof![
        (any::<Index>(), 1u8..=255).prop_map(|(at, mask)| ByteMutation::Flip(at, mask)),
        (any::<Index>(), any::<u8>()).prop_map(|(at, b)| ByteMutation::Insert(at, b)),
        any::<Index>().prop_map(ByteMutation::Delete),
        any::<Index>().prop_map(ByteMutation::Truncate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| ByteMutation::Duplicate(a, b)),
    ]
}

/// JSON pointers to every node of `value`, leaves included (so that a replacement can hit
/// any value), the root first.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{escaped}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn mutate_json(value: &mut Value, mutation: &JsonMutation) {
    let mut all = Vec::new();
    pointers(value, String::new(), &mut all);
    let node = |at: &Index| all[at.index(all.len())].clone();
    match mutation {
        JsonMutation::Replace(at, replacement) => {
            if let Some(target) = value.pointer_mut(&node(at)) {
                *target = replacement.clone();
            }
        }
        JsonMutation::Drop(at, field) => {
            if let Some(Value::Object(map)) = value.pointer_mut(&node(at)) {
                if !map.is_empty() {
                    let key = map.keys().nth(field.index(map.len())).unwrap().clone();
                    map.remove(&key);
                }
            }
        }
        JsonMutation::Add(at, key, added) => {
            if let Some(Value::Object(map)) = value.pointer_mut(&node(at)) {
                map.insert(key.clone(), added.clone());
            }
        }
    }
}

fn mutate_bytes(bytes: &mut Vec<u8>, mutation: &ByteMutation) {
    let len = bytes.len();
    match mutation {
        ByteMutation::Flip(at, mask) if len > 0 => bytes[at.index(len)] ^= mask,
        ByteMutation::Insert(at, byte) => bytes.insert(at.index(len + 1), *byte),
        ByteMutation::Delete(at) if len > 0 => {
            bytes.remove(at.index(len));
        }
        ByteMutation::Truncate(at) => bytes.truncate(at.index(len + 1)),
        ByteMutation::Duplicate(a, b) if len > 0 => {
            let (a, b) = (a.index(len), b.index(len));
            let (start, end) = (a.min(b), a.max(b) + 1);
            let copy = bytes[start..end].to_vec();
            bytes.splice(end..end, copy);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use serde_json::json;

    use super::*;

    /// An `Index` that picks `i` out of `len`.
    fn index(i: usize, len: usize) -> Index {
        let mut runner = TestRunner::deterministic();
        loop {
            let at = any::<Index>().new_tree(&mut runner).unwrap().current();
            if at.index(len) == i {
                return at;
            }
        }
    }

    #[test]
    fn pointers_reach_every_node_and_escape_keys() {
        let value = json!({"a/b": [1, {"c~d": null}], "e": "f"});
        let mut all = Vec::new();
        pointers(&value, String::new(), &mut all);
        assert_eq!(
            all,
            ["", "/a~1b", "/a~1b/0", "/a~1b/1", "/a~1b/1/c~0d", "/e"]
        );
        for pointer in &all {
            assert!(value.pointer(pointer).is_some(), "{pointer}");
        }
    }

    #[test]
    fn json_mutations_change_the_node_they_point_at() {
        let mut value = json!({"a": {"b": 1}, "c": 2});
        // nodes: "", "/a", "/a/b", "/c"
        mutate_json(&mut value, &JsonMutation::Replace(index(2, 4), json!("x")));
        assert_eq!(value, json!({"a": {"b": "x"}, "c": 2}));
        mutate_json(&mut value, &JsonMutation::Drop(index(0, 4), index(1, 2)));
        assert_eq!(value, json!({"a": {"b": "x"}}));
        mutate_json(
            &mut value,
            &JsonMutation::Add(index(1, 3), "d".into(), json!([])),
        );
        assert_eq!(value, json!({"a": {"b": "x", "d": []}}));
        // a field dropped from a string changes nothing
        mutate_json(&mut value, &JsonMutation::Drop(index(2, 4), index(0, 1)));
        assert_eq!(value, json!({"a": {"b": "x", "d": []}}));
    }

    #[test]
    fn byte_mutations_fit_any_length() {
        let mut bytes = b"abc".to_vec();
        mutate_bytes(
            &mut bytes,
            &ByteMutation::Duplicate(index(1, 3), index(0, 3)),
        );
        assert_eq!(bytes, b"ababc");
        mutate_bytes(&mut bytes, &ByteMutation::Truncate(index(1, 6)));
        assert_eq!(bytes, b"a");
        mutate_bytes(&mut bytes, &ByteMutation::Delete(index(0, 1)));
        assert_eq!(bytes, b"");
        for mutation in [
            ByteMutation::Flip(index(0, 1), 1),
            ByteMutation::Delete(index(0, 1)),
            ByteMutation::Truncate(index(0, 1)),
            ByteMutation::Duplicate(index(0, 1), index(0, 1)),
        ] {
            mutate_bytes(&mut bytes, &mutation);
            assert_eq!(bytes, b"", "{mutation:?}");
        }
        mutate_bytes(&mut bytes, &ByteMutation::Insert(index(0, 1), b'z'));
        assert_eq!(bytes, b"z");
    }
}
