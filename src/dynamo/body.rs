//! A BatchWriteItem's body written straight from items, as DynamoDB's JSON protocol takes it.
//!
//! The SDK takes a batch as maps of `String` to `AttributeValue`, one copy of every name and
//! value, then serialises them to this same JSON and drops them: for an 8-column row change, the
//! copies and their maps were about a quarter of the CPU path of `benches/cpu.rs` (issue 13),
//! before the SDK's own serialisation. The writer sends the first attempt of a batch with this
//! body in place of the one the SDK serialised (`sink/writer.rs`); the SDK still signs, sends
//! and reads the answer, and items DynamoDB leaves unprocessed come back typed as before.
//! `tests::bodies_are_the_sdks` checks, value by value, that the JSON means what the SDK's says.

use std::io::Write as _;

use base64::Engine as _;

use super::item::{VERSION_ATTRIBUTE, VIEW_ATTRIBUTE};
use crate::view::project::Item;
use crate::view::value::Attr;
use crate::view::ItemKey;

/// The body of one BatchWriteItem: requests are added table by table (each table's once, all
/// of its requests together), then [`finish`](BatchBody::finish)ed. Where a comma goes is told
/// by the last byte written: `{` before the first table, `[` before a table's first request.
pub struct BatchBody {
    out: Vec<u8>,
}

impl BatchBody {
    /// `capacity`: the bytes expected (items' sizes), to grow the buffer once at most.
    pub fn with_capacity(capacity: usize) -> BatchBody {
        let mut out = Vec::with_capacity(capacity + 64);
        out.extend_from_slice(b"{\"RequestItems\":{");
        BatchBody { out }
    }

    /// Starts the requests of `table`; every request until the next call is of it.
    pub fn table(&mut self, table: &str) {
        if self.out.last() != Some(&b'{') {
            self.out.extend_from_slice(b"],");
        }
        string(&mut self.out, table);
        self.out.extend_from_slice(b":[");
    }

    fn request(&mut self) {
        match self.out.last() {
            Some(b'{') => panic!("a request before its table"),
            Some(b'[') => {}
            _ => self.out.push(b','),
        }
    }

    /// A put of the item as [`encode_item`](super::encode_item) makes it (see [`attributes`]).
    pub fn put(&mut self, item: &Item, version: u128, view: &str) {
        self.request();
        self.out.extend_from_slice(b"{\"PutRequest\":{\"Item\":{");
        attributes(&mut self.out, item, version, view);
        self.out.extend_from_slice(b"}}}");
    }

    /// A delete of the item of `key`, as [`encode_key`](super::encode_key) makes its key.
    pub fn delete(&mut self, key: &ItemKey) {
        self.request();
        self.out.extend_from_slice(b"{\"DeleteRequest\":{\"Key\":{");
        string(&mut self.out, &key.pk_attribute);
        self.out.push(b':');
        value_text(&mut self.out, S, &key.pk);
        if let (Some(name), Some(sk)) = (&key.sk_attribute, &key.sk) {
            self.out.push(b',');
            string(&mut self.out, name);
            self.out.push(b':');
            value_text(&mut self.out, S, sk);
        }
        self.out.extend_from_slice(b"}}}");
    }

    /// The body's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        if self.out.last() != Some(&b'{') {
            self.out.push(b']');
        }
        self.out.extend_from_slice(b"}}");
        self.out
    }
}

/// The attributes of `item` as written for `view` at `version`, as JSON object members: the
/// item's own, then the version and the view's name in the metadata attributes, which take the
/// place of any of the item's own of those names.
pub fn attributes(out: &mut Vec<u8>, item: &Item, version: u128, view: &str) {
    for (name, attr) in item {
        if name.starts_with('_') && (name == VERSION_ATTRIBUTE || name == VIEW_ATTRIBUTE) {
            continue;
        }
        string(out, name);
        out.push(b':');
        value(out, attr);
        out.push(b',');
    }
    // A number's digits need no escaping, nor do the metadata attributes' names.
    out.extend_from_slice(VERSION_OPENING);
    // A version is above 2^64 (`seq << 32`, `seq` from the clock): `itoa`'s `u128` path.
    out.extend_from_slice(itoa::Buffer::new().format(version).as_bytes());
    out.extend_from_slice(VIEW_OPENING);
    string(out, view);
    out.push(b'}');
}

/// The version attribute's name and its value's opening, up to its digits, as [`string`] and
/// [`value_text`] write them (`tests::metadata_openings_are_written_as_strings`).
const VERSION_OPENING: &[u8] = b"\"_version\":{\"N\":\"";
/// The end of the version's value, then the view attribute's name and its value's opening.
const VIEW_OPENING: &[u8] = b"\"},\"_view\":{\"S\":";

/// A value of a text type: `tag` is its opening, `{"S":` or `{"N":` (one slice, as this is most
/// of a body).
#[inline]
fn value_text(out: &mut Vec<u8>, tag: &[u8], text: &str) {
    out.extend_from_slice(tag);
    string(out, text);
    out.push(b'}');
}

/// The openings of string and number values.
const S: &[u8] = b"{\"S\":";
const N: &[u8] = b"{\"N\":";

/// A JSON string: quoted, with `"`, `\\` and control characters escaped. Inlined: it is most
/// of a body's calls (every name and every text value), and a call's saved registers cost about
/// a fifth of one; a text that escapes something takes the call to [`escaped_string`].
#[inline]
fn string(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    if has_escaped(bytes) {
        return escaped_string(out, bytes);
    }
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    out.extend_from_slice(bytes);
    out.push(b'"');
}

/// [`string`] of a text with something to escape.
#[cold]
#[inline(never)]
fn escaped_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut from = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[from..at]);
        if escape.is_empty() {
            // Any other control character as `\u00XX`.
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.extend_from_slice(escape);
        }
        from = at + 1;
    }
    out.extend_from_slice(&bytes[from..]);
    out.push(b'"');
}

/// Whether a JSON string escapes some byte of `bytes` (`"`, `\\`, or one below 0x20), looked
/// at eight bytes at a time: the text of items is most of a body, and looking at it byte by
/// byte cost more than the SDK's maps saved (callgrind, `benches/cpu.rs`). A text of eight bytes
/// or more ends with its last eight (read again where they overlap the words before). A shorter
/// one, most attribute names, is made one word too: of four to seven bytes, its first four and
/// its last four (overlapping); of one to three, its first, middle and last byte, with `a`s
/// (which need no escape) for the rest. A byte read twice changes nothing.
#[inline]
fn has_escaped(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    // Some byte of `word` is below `n` (n ≤ 0x80) exactly when this is not zero (a borrow can
    // mark a byte above one that is below, never a word with none).
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGH;
    let escaped = |word: u64| {
        below(word, 0x20)
            | below(word ^ (ONES * u64::from(b'"')), 1)
            | below(word ^ (ONES * u64::from(b'\\')), 1)
    };
    let word_at = |at: usize| u64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
    let half_at = |at: usize| {
        u64::from(u32::from_ne_bytes(
            bytes[at..at + 4].try_into().unwrap_or([0; 4]),
        ))
    };
    let len = bytes.len();
    if len < 8 {
        let word = match len {
            0 => return false,
            1..=3 => u64::from_ne_bytes([
                bytes[0],
                bytes[len / 2],
                bytes[len - 1],
                b'a',
                b'a',
                b'a',
                b'a',
                b'a',
            ]),
            _ => half_at(0) | half_at(len - 4) << 32,
        };
        return escaped(word) != 0;
    }
    let mut hits = 0;
    let mut at = 0;
    while at + 8 <= len {
        hits |= escaped(word_at(at));
        at += 8;
    }
    if at < len {
        hits |= escaped(word_at(len - 8));
    }
    hits != 0
}

/// An attribute value in DynamoDB's JSON (`{"S":"…"}`, `{"N":"…"}`, base64 for binary).
fn value(out: &mut Vec<u8>, attr: &Attr) {
    match attr {
        Attr::S(text) => return value_text(out, S, text),
        Attr::N(number) => return value_text(out, N, number),
        Attr::B(bytes) => {
            out.extend_from_slice(b"{\"B\":\"");
            let start = out.len();
            out.resize(
                start + base64::encoded_len(bytes.len(), true).unwrap_or(0),
                0,
            );
            let written = base64::engine::general_purpose::STANDARD
                .encode_slice(bytes, &mut out[start..])
                .unwrap_or(0);
            out.truncate(start + written);
            out.push(b'"');
        }
        Attr::Ss(items) => {
            out.extend_from_slice(b"{\"SS\":[");
            for (at, item) in items.iter().enumerate() {
                if at > 0 {
                    out.push(b',');
                }
                string(out, item);
            }
            out.push(b']');
        }
        Attr::M(map) => {
            out.extend_from_slice(b"{\"M\":{");
            for (at, (name, attr)) in map.iter().enumerate() {
                if at > 0 {
                    out.push(b',');
                }
                string(out, name);
                out.push(b':');
                value(out, attr);
            }
            out.push(b'}');
        }
        Attr::L(items) => {
            out.extend_from_slice(b"{\"L\":[");
            for (at, item) in items.iter().enumerate() {
                if at > 0 {
                    out.push(b',');
                }
                value(out, item);
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
    use crate::dynamo::{encode_item, encode_key};
    use aws_sdk_dynamodb::types::{DeleteRequest, PutRequest, WriteRequest};
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashMap};
    use std::sync::{Arc, Mutex};

    /// The body the SDK serialises for these requests, caught before it is signed (the send
    /// then fails: nothing listens on port 1).
    fn sdk_body(requests: HashMap<String, Vec<WriteRequest>>) -> Vec<u8> {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:1")
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "AKID", "SECRET", None, None, "test",
            ))
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        let caught = Arc::new(Mutex::new(Vec::new()));
        let into = caught.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let _ = runtime.block_on(
            client
                .batch_write_item()
                .set_request_items(Some(requests))
                .customize()
                .mutate_request(move |request| {
                    let bytes = request.body().bytes().expect("a body in memory");
                    *into.lock().expect("not poisoned") = bytes.to_vec();
                })
                .send(),
        );
        let body = caught.lock().expect("not poisoned").clone();
        assert!(!body.is_empty(), "the SDK's body was caught");
        body
    }

    fn json(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).expect("valid JSON")
    }

    fn attr() -> impl Strategy<Value = Attr> {
        let text = "(?s).{0,12}|[\"\\\\\\x00-\\x1f\u{7f}\u{2028}é😀]{0,6}";
        let leaf = prop_oneof![
            text.prop_map(Attr::S),
            "-?[0-9]{1,5}(\\.[0-9]{1,3})?".prop_map(Attr::N),
            proptest::collection::vec(any::<u8>(), 0..10).prop_map(Attr::B),
            proptest::collection::vec(text, 1..4).prop_map(|items: Vec<String>| Attr::Ss(
                items.into_iter().map(Into::into).collect()
            )),
            any::<bool>().prop_map(Attr::Bool),
            Just(Attr::Null),
        ];
        leaf.prop_recursive(2, 12, 4, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Attr::L),
                proptest::collection::btree_map(text, inner, 0..4)
                    .prop_map(|m: BTreeMap<String, Attr>| Attr::M(m)),
            ]
        })
    }

    fn key(table: &str, pk: String, sk: Option<String>) -> ItemKey {
        ItemKey {
            table: table.into(),
            pk_attribute: "pk".into(),
            pk,
            sk_attribute: sk.as_ref().map(|_| "sk".into()),
            sk,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Puts and deletes of one or two tables: the body means what the SDK's body means.
        #[test]
        fn bodies_are_the_sdks(
            items in proptest::collection::vec(
                proptest::collection::btree_map("[a-z_\"é]{1,6}", attr(), 0..6),
                0..4,
            ),
            deletes in proptest::collection::vec(("(?s).{1,8}", proptest::option::of("(?s).{1,8}")), 0..3),
            view in "(?s).{1,8}",
        ) {
            let mut body = BatchBody::with_capacity(0);
            let mut typed: HashMap<String, Vec<WriteRequest>> = HashMap::new();
            let items: Vec<Item> = items
                .into_iter()
                .map(|attrs| attrs.into_iter().collect())
                .collect();
            let versions: Vec<u128> = (0..items.len()).map(|n| (n as u128) << 70 | 7).collect();
            if !items.is_empty() {
                body.table("first \"table\"");
                for (item, version) in items.iter().zip(&versions) {
                    body.put(item, *version, &view);
                    typed.entry("first \"table\"".into()).or_default().push(
                        WriteRequest::builder()
                            .put_request(
                                PutRequest::builder()
                                    .set_item(Some(encode_item(item, *version, &view)))
                                    .build()
                                    .unwrap(),
                            )
                            .build(),
                    );
                }
            }
            if !deletes.is_empty() {
                body.table("second");
                for (pk, sk) in deletes {
                    let key = key("second", pk, sk);
                    body.delete(&key);
                    typed.entry("second".into()).or_default().push(
                        WriteRequest::builder()
                            .delete_request(
                                DeleteRequest::builder()
                                    .set_key(Some(encode_key(&key)))
                                    .build()
                                    .unwrap(),
                            )
                            .build(),
                    );
                }
            }
            let body = body.finish();
            // Each metadata attribute once per item (parsed JSON keeps the last of a name).
            let count = |what: &str| body.windows(what.len()).filter(|w| *w == what.as_bytes()).count();
            prop_assert_eq!(count("\"_version\":"), items.len());
            prop_assert_eq!(json(&body), json(&sdk_body(typed)));
        }
    }

    proptest! {
        /// Eight bytes at a time finds what a look at each byte finds.
        #[test]
        fn escaped_bytes_are_found_as_one_by_one(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\\'), 0u8..0x21, 0x1fu8..=0xff], 0..40),
        ) {
            let naive = bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
            prop_assert_eq!(has_escaped(&bytes), naive);
        }
    }

    /// An item's own attribute of a metadata name gives way to the metadata, as when encoded.
    #[test]
    fn metadata_names_are_the_writers() {
        let item: Item = [
            ("_version", Attr::N("1".into())),
            ("_view", Attr::S("other".into())),
            ("a", Attr::S("x".into())),
        ]
        .into_iter()
        .collect();
        let mut body = BatchBody::with_capacity(0);
        body.table("t");
        body.put(&item, 9, "v");
        assert_eq!(
            json(&body.finish()),
            serde_json::json!({"RequestItems": {"t": [{"PutRequest": {"Item": {
                "a": {"S": "x"}, "_version": {"N": "9"}, "_view": {"S": "v"}
            }}}]}})
        );
    }

    /// The metadata's openings are what [`string`] and [`value_text`] write for them.
    #[test]
    fn metadata_openings_are_written_as_strings() {
        let mut version = Vec::new();
        string(&mut version, VERSION_ATTRIBUTE);
        version.push(b':');
        version.extend_from_slice(N);
        version.push(b'"');
        assert_eq!(VERSION_OPENING, version);
        let mut view = b"\"}".to_vec();
        view.push(b',');
        string(&mut view, VIEW_ATTRIBUTE);
        view.push(b':');
        view.extend_from_slice(S);
        assert_eq!(VIEW_OPENING, view);
    }
}
