//! Items as DynamoDB JSON, the S3 import format `DYNAMODB_JSON`: one `{"Item": {…}}` per line,
//! every value typed (`{"S": "…"}`, `{"N": "…"}`, `{"B": "<base64>"}`, …).

use crate::view::project::Item;

/// Appends one import line (with a trailing line break) for `item` of `view` at `version`: the
/// attributes rowcast writes for it, metadata included, so that the daemon that resumes after
/// an import finds the items as if it had written them (written as the writer's batches are,
/// `dynamo/body.rs`).
pub fn item_line(out: &mut Vec<u8>, item: &Item, version: u128, view: &str) {
    out.extend_from_slice(b"{\"Item\":{");
    crate::dynamo::body::attributes(out, item, version, view);
    out.extend_from_slice(b"}}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::value::Attr;

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
