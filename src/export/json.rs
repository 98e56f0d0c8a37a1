//! Items as DynamoDB JSON, the S3 import format `DYNAMODB_JSON`: one `{"Item": {…}}` per line,
//! every value typed (`{"S": "…"}`, `{"N": "…"}`, `{"B": "<base64>"}`, …).

use base64::Engine;

use crate::dynamo::{VERSION_ATTRIBUTE, VIEW_ATTRIBUTE};
use crate::view::project::Item;
use crate::view::value::Attr;

/// Appends one import line (with a trailing line break) for `item` of `view` at `version`: the
/// attributes rowcast writes for it, metadata included, so that the daemon that resumes after
/// an import finds the items as if it had written them.
pub fn item_line(out: &mut Vec<u8>, item: &Item, version: u128, view: &str) {
    out.extend_from_slice(b"{\"Item\":{");
    for (name, value) in item {
        string(out, name);
        out.push(b':');
        attr(out, value);
        out.push(b',');
    }
    string(out, VERSION_ATTRIBUTE);
    out.extend_from_slice(b":{\"N\":\"");
    out.extend_from_slice(version.to_string().as_bytes());
    out.extend_from_slice(b"\"},");
    string(out, VIEW_ATTRIBUTE);
    out.extend_from_slice(b":{\"S\":");
    string(out, view);
    out.extend_from_slice(b"}}}\n");
}

fn string(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(&mut *out, text).expect("a string serializes into a vector");
}

fn attr(out: &mut Vec<u8>, value: &Attr) {
    match value {
        Attr::S(text) => {
            out.extend_from_slice(b"{\"S\":");
            string(out, text);
        }
        Attr::N(number) => {
            out.extend_from_slice(b"{\"N\":");
            string(out, number);
        }
        Attr::B(bytes) => {
            out.extend_from_slice(b"{\"B\":\"");
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(bytes)
                    .as_bytes(),
            );
            out.push(b'"');
        }
        Attr::Ss(items) => {
            out.extend_from_slice(b"{\"SS\":[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, item);
            }
            out.push(b']');
        }
        Attr::M(map) => {
            out.extend_from_slice(b"{\"M\":{");
            for (i, (name, value)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, name);
                out.push(b':');
                attr(out, value);
            }
            out.push(b'}');
        }
        Attr::L(items) => {
            out.extend_from_slice(b"{\"L\":[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                attr(out, item);
            }
            out.push(b']');
        }
        Attr::Bool(b) => out.extend_from_slice(if *b {
            b"{\"BOOL\":true"
        } else {
            b"{\"BOOL\":false"
        }),
        Attr::Null => out.extend_from_slice(b"{\"NULL\":true"),
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_written_as_dynamodb_json() {
        let mut item = Item::new();
        item.insert("pk", Attr::S("A#\"1\"".into()));
        item.insert("n", Attr::N("-1.50".into()));
        item.insert("b", Attr::B(vec![0, 255, 7]));
        item.insert("ss", Attr::Ss(vec!["x".into(), "y".into()]));
        item.insert("t", Attr::Bool(true));
        item.insert("z", Attr::Null);
        let mut inner = std::collections::BTreeMap::new();
        inner.insert(
            "k".into(),
            Attr::L(vec![Attr::N("1".into()), Attr::S("é".into())]),
        );
        item.insert("m", Attr::M(inner));
        let mut out = Vec::new();
        item_line(&mut out, &item, 7 << 32, "v");
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with('\n'));
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        let expected = serde_json::json!({"Item": {
            "pk": {"S": "A#\"1\""}, "n": {"N": "-1.50"}, "b": {"B": "AP8H"},
            "ss": {"SS": ["x", "y"]}, "t": {"BOOL": true}, "z": {"NULL": true},
            "m": {"M": {"k": {"L": [{"N": "1"}, {"S": "é"}]}}},
            "_version": {"N": "30064771072"}, "_view": {"S": "v"},
        }});
        assert_eq!(parsed, expected);
    }
}
