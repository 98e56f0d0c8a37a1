use std::path::Path;

use super::compile::load_with_env;

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rowcast-config-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The problems of the config in `dir` (which must have some), one per line.
fn load_errors(dir: &Path) -> String {
    let errors = load_with_env(&dir.join("rowcast.toml"), &|_| Some("pw".into())).unwrap_err();
    let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

const CONFIG: &str = r#"
views = ["views/*.toml"]
[source]
url = "mysql://rowcast:${PW}@127.0.0.1:3306"
server_id = 4242
[checkpoint]
path = "state/checkpoint.json"
"#;

#[test]
fn loads_a_good_config() {
    let dir = temp_dir("good");
    write(&dir, "rowcast.toml", CONFIG);
    write(
        &dir,
        "views/a.toml",
        r#"
name = "order_summary"
table = "shop_views"
source = "shop.orders"
filter = "status <> 'deleted'"
[key]
pk = "CUSTOMER#{customer_id}"
sk = "ORDER#{id:010}"
[attributes]
status = "status"
placed = { column = "created_at", as = "epoch_millis" }
"#,
    );
    let config = load_with_env(&dir.join("rowcast.toml"), &|_| Some("secret".into())).unwrap();
    let connection = &config.source.connection;
    assert_eq!(connection.address, "mysql://127.0.0.1:3306");
    assert_eq!(connection.user.as_deref(), Some("rowcast"));
    assert_eq!(connection.password.expose(), "secret");
    assert!(!format!("{config:?}").contains("secret"));
    assert_eq!(config.views.len(), 1);
    assert_eq!(config.views[0].key.sk_attribute.as_deref(), Some("sk"));
}

#[test]
fn lists_every_problem_with_file_and_field() {
    let dir = temp_dir("bad");
    write(
        &dir,
        "rowcast.toml",
        &CONFIG.replace("views/*.toml\"]", "views/*.toml\", \"none/*.toml\"]"),
    );
    write(
        &dir,
        "views/a.toml",
        r#"
name = "Bad-Name"
table = "t"
source = "orders"
filter = "status = "
[key]
pk = "A#{id"
[attributes]
_v = "x"
total = { column = "total", as = "roman" }
[[lookup]]
from = "customers"
on = {}
attributes = { total = "name" }
[[aggregate]]
attribute = "lines"
from = "shop.items"
on = { order_id = "id" }
function = "median:price"
[[embed]]
attribute = "lines"
from = "shop.items"
on = { order_id = "id" }
order_by = "line_no SIDEWAYS"
"#,
    );
    write(
        &dir,
        "views/b.toml",
        "name = \"b\"\ntable = \"tbl\"\nsource = \"a.b\"\nbogus = 1\n[key]\npk = \"x\"\n",
    );
    let errors = load_with_env(&dir.join("rowcast.toml"), &|_| None)
        .unwrap_err()
        .0;
    let text: Vec<String> = errors.iter().map(|p| p.to_string()).collect();
    let has = |file: &str, field: &str| {
        errors
            .iter()
            .any(|p| p.file.ends_with(file) && p.field == field)
    };
    assert!(has("rowcast.toml", "source.url"), "{text:#?}");
    assert!(has("rowcast.toml", "views[1]"), "{text:#?}");
    for field in [
        "name",
        "table",
        "source",
        "filter",
        "key.pk",
        "attributes._v",
        "attributes.total.as",
        "lookup[0].from",
        "lookup[0].on",
        "lookup[0].attributes.total",
        "aggregate[0].function",
        "aggregate[0].attribute",
        "embed[0].order_by",
    ] {
        assert!(has("a.toml", field), "missing {field}: {text:#?}");
    }
    assert!(
        errors
            .iter()
            .any(|p| p.file.ends_with("b.toml") && p.message.contains("bogus")),
        "{text:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|p| p.field == "filter" && p.message.starts_with("column 10")),
        "{text:#?}"
    );
}

#[test]
fn parse_errors_name_the_field_and_line() {
    let dir = temp_dir("parse");
    write(
        &dir,
        "rowcast.toml",
        &CONFIG.replace("server_id = 4242", "server_id = \"abc\""),
    );
    let errors = load_with_env(&dir.join("rowcast.toml"), &|_| Some("pw".into()))
        .unwrap_err()
        .0;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "source.server_id (line 5)", "{errors:?}");
    write(&dir, "rowcast.toml", CONFIG);
    write(&dir, "views/a.toml", "name = \"a\"\ntable = \"tbl\"\nsource = \"a.b\"\n[key]\npk = \"x\"\n[attributes]\nfoo = { column = \"x\", bogus = 1 }\n");
    let errors = load_with_env(&dir.join("rowcast.toml"), &|_| Some("pw".into()))
        .unwrap_err()
        .0;
    assert_eq!(errors[0].field, "attributes.foo (line 7)", "{errors:?}");
    assert!(
        errors[0].message.contains("unknown field `bogus`"),
        "{errors:?}"
    );
}

#[test]
fn write_back_views_must_be_unambiguous_and_never_assign_keys() {
    let dir = temp_dir("ambiguous");
    write(&dir, "rowcast.toml", CONFIG);
    let view = |name: &str, pk: &str, sk: &str, writeback: &str| {
        format!(
            "name = \"{name}\"\ntable = \"shared\"\nsource = \"shop.{name}\"\n[key]\npk = \"{pk}\"\nsk = \"{sk}\"\n[attributes]\nnote = \"note\"\nref = \"code\"\n{writeback}"
        )
    };
    let writable = "[writeback]\nenabled = true\nattributes = [\"note\"]\n";
    write(
        &dir,
        "views/a.toml",
        &view("accounts", "ACC#{id}", "META", writable),
    );
    // Same shape of key: write-back could not tell whose item ACC#7/META is.
    write(
        &dir,
        "views/b.toml",
        &view("archived", "ACC#{code}", "META", ""),
    );
    // Distinct literal: fine.
    write(
        &dir,
        "views/c.toml",
        &view("orders", "ORDER#{id}", "META", ""),
    );
    // A writable attribute that maps to a key column.
    write(
        &dir,
        "views/d.toml",
        &view(
            "codes",
            "CODE#{code}",
            "META",
            "[writeback]\nenabled = true\nattributes = [\"ref\"]\n",
        ),
    );
    // The same, the column spelled in another case than the key's (`CODE` is `code`).
    write(
        &dir,
        "views/e.toml",
        &view(
            "cased",
            "CASED#{code}",
            "META",
            "[writeback]\nenabled = true\nattributes = [\"ref\"]\n",
        )
        .replace("ref = \"code\"", "ref = \"CODE\""),
    );
    let errors = load_errors(&dir);
    assert!(
        errors.contains("e.toml: writeback.attributes[0]") && errors.contains("key column CODE"),
        "{errors}"
    );
    assert!(
        errors.contains("a.toml: key") && errors.contains("view \"archived\""),
        "{errors}"
    );
    assert!(!errors.contains("view \"orders\""), "{errors}");
    assert!(
        errors.contains("d.toml: writeback.attributes[0]") && errors.contains("key column code"),
        "{errors}"
    );
}

#[test]
fn zero_intervals_are_errors() {
    let dir = temp_dir("zero");
    let config = CONFIG
        .replace("server_id = 4242", "server_id = 4242\nmax_backoff_ms = 0")
        .replace(
            "path = \"state/checkpoint.json\"",
            "path = \"state/checkpoint.json\"\ninterval_ms = 0",
        );
    write(&dir, "rowcast.toml", &config);
    write(
        &dir,
        "views/a.toml",
        "name = \"a\"\ntable = \"tbl\"\nsource = \"a.b\"\n[key]\npk = \"x\"\n",
    );
    let errors = load_with_env(&dir.join("rowcast.toml"), &|_| Some("pw".into()))
        .unwrap_err()
        .0;
    for field in ["checkpoint.interval_ms", "source.max_backoff_ms"] {
        assert!(
            errors.iter().any(|p| p.field == field),
            "missing {field}: {errors:?}"
        );
    }
}

#[test]
fn production_sections_are_checked() {
    let dir = temp_dir("production");
    write(
        &dir,
        "views/a.toml",
        "name = \"a\"\ntable = \"t\"\nsource = \"d.a\"\n[key]\npk = \"A#{id}\"\n",
    );
    write(&dir, "token", "\n");
    let source = CONFIG.replace("[checkpoint]\npath = \"state/checkpoint.json\"\n", "");
    write(
        &dir,
        "rowcast.toml",
        &format!(
            "{source}password_file = \"missing\"\ntls = \"sometimes\"\nca_file = \"token\"\n[metrics]\nlisten = \"127.0.0.1:9000\"\n[api]\nlisten = \"127.0.0.1:9000\"\ntoken_file = \"token\"\n[pipeline]\nname = \"Not Valid\"\n[checkpoint]\npath = \"state/checkpoint.json\"\n"
        ),
    );
    let errors = load_with_env(&dir.join("rowcast.toml"), &|_| Some("pw".into())).unwrap_err();
    let text: Vec<String> = errors.0.iter().map(|p| p.to_string()).collect();
    for needle in [
        "source.password_file: the url has a password too",
        "source.password_file: cannot read",
        "source.tls: \"sometimes\": expected one of",
        "api.listen: must differ from metrics.listen",
        "api.token_file: is empty",
        "pipeline.name: \"Not Valid\"",
        "source.ca_file: is only used with tls = \"verify_ca\"",
    ] {
        assert!(
            text.iter().any(|t| t.contains(needle)),
            "{needle:?} in {text:#?}"
        );
    }
}

#[test]
fn tls_and_names_that_would_mislead_are_problems() {
    let dir = temp_dir("mislead");
    write(
        &dir,
        "views/a.toml",
        "name = \"a\"\ntable = \"t\"\nsource = \"d.a\"\n[key]\npk = \"A#{id}\"\n",
    );
    let config = CONFIG.replace("rowcast:${PW}@", "${CREDS}@").replace(
        "server_id = 4242\n",
        "server_id = 4242\ntls = \"verify_ca\"\n",
    ) + "[pipeline]\nname = \"4242\"\n";
    write(&dir, "rowcast.toml", &config);
    let errors =
        load_with_env(&dir.join("rowcast.toml"), &|_| Some("app:hunter2".into())).unwrap_err();
    let text: Vec<String> = errors.0.iter().map(|p| p.to_string()).collect();
    for needle in [
        "source.url: user: contains ':'",
        "source.ca_file: tls = \"verify_ca\" needs the CA",
        "pipeline.name: \"4242\": expected [a-z0-9_-]{1,64}, not only digits",
    ] {
        assert!(
            text.iter().any(|t| t.contains(needle)),
            "{needle:?} in {text:#?}"
        );
    }
    assert!(text.iter().all(|t| !t.contains("hunter2")), "{text:#?}");
}

#[test]
fn indexes_are_checked_in_each_view_and_between_views_of_a_table() {
    let dir = temp_dir("indexes");
    write(&dir, "rowcast.toml", CONFIG);
    let view = |name: &str, indexes: &str| {
        format!(
            "name = \"{name}\"\ntable = \"shared\"\nsource = \"shop.{name}\"\n[key]\npk = \"{}#{{id}}\"\nsk = \"META\"\n[attributes]\nemail = \"email\"\nstatus = \"status\"\n{indexes}",
            name.to_uppercase()
        )
    };
    // Good: a sparse GSI with defaults, and an overloaded one shared with b.toml.
    write(
        &dir,
        "views/a.toml",
        &view(
            "customers",
            "[[index]]\nname = \"by_email\"\npk = \"EMAIL#{email}\"\n[[index]]\nname = \"gsi1\"\npk = \"STATUS#{status}\"\nsk = \"C#{id:08}\"\nprojection = [\"email\"]\n",
        ),
    );
    // Shares gsi1 with other attribute names and another projection.
    write(
        &dir,
        "views/b.toml",
        &view(
            "orders",
            "[[index]]\nname = \"gsi1\"\npk = \"STATUS#{status}\"\nsk = \"O#{id}\"\nsk_attribute = \"gsi1sk\"\nprojection = \"keys_only\"\n",
        ),
    );
    // Per view: a bad name, an attribute that is the view's own, sk_attribute without sk, a
    // projection of an unknown attribute, a bad template, a writable index attribute.
    write(
        &dir,
        "views/c.toml",
        &view(
            "notes",
            "[writeback]\nenabled = true\nattributes = [\"x_pk\"]\n[[index]]\nname = \"x\"\npk = \"{email\"\n[[index]]\nname = \"by_status\"\npk = \"{status}\"\npk_attribute = \"email\"\nsk_attribute = \"s\"\nprojection = [\"nope\"]\n",
        ),
    );
    let errors = load_errors(&dir);
    let has = |needle: &str| assert!(errors.contains(needle), "{needle:?} not in\n{errors}");
    has(
        "b.toml: index[0]: index gsi1 of table shared has key attributes gsi1_pk/Some(\"gsi1_sk\")",
    );
    has("b.toml: index[0].projection");
    has("c.toml: index[0].name");
    has("c.toml: index[0].pk");
    has("c.toml: index[1].pk_attribute: \"email\" is an attribute of this view");
    has("c.toml: index[1].sk_attribute: set without sk");
    has("c.toml: index[1].projection: \"nope\" is not an attribute of this view");
    assert!(!errors.contains("a.toml: "), "{errors}");

    // a.toml alone is good; its items carry by_email_pk, gsi1_pk and gsi1_sk.
    std::fs::remove_file(dir.join("views/b.toml")).unwrap();
    std::fs::remove_file(dir.join("views/c.toml")).unwrap();
    let config = load_with_env(&dir.join("rowcast.toml"), &|_| Some("pw".into())).unwrap();
    let view = &config.views[0];
    assert_eq!(view.indexes.len(), 2);
    assert_eq!(&*view.indexes[0].pk_attribute, "by_email_pk");
    assert_eq!(view.indexes[0].sk_attribute, None);
    assert_eq!(view.indexes[1].sk_attribute.as_deref(), Some("gsi1_sk"));
    assert!(view.is_key_attribute("gsi1_sk"));
}

/// A view's definition fingerprint (the checkpoint keeps it; another value backfills the view
/// again and removes its items the old definition alone made) stays what it was before items,
/// names and number literals changed form on 2026-12-04: the value is the one the code of
/// 85649f6 gave. A number literal printed otherwise after that change: an upgrade would have
/// backfilled every view filtering on a number (found by a review).
#[test]
fn definition_fingerprints_survive_the_changes_of_their_parts_forms() {
    let text = r#"
name = "orders"
table = "shop_views"
source = "shop.orders"
filter = "total > 0 AND status IN ('paid', 'sent') AND weight >= -1.5e2 AND note IS NOT NULL"
[key]
pk = "CUSTOMER#{customer_id}"
sk = "ORDER#{id:010}"
[attributes]
status = "status"
total = { column = "total", as = "string" }
placed = { column = "placed_at", as = "epoch_millis" }
[[index]]
name = "by_status"
pk = "STATUS#{status}"
sk = "{id:08}"
[[lookup]]
from = "shop.customers"
on = { id = "customer_id" }
attributes = { customer_name = "name" }
"#;
    let view = super::compile_view(Path::new("orders.toml"), text).expect("valid view");
    assert_eq!(view.fingerprint(), PINNED_FINGERPRINT);
}

const PINNED_FINGERPRINT: &str = "6fb9f450e070f9ce62ac5495";

/// Two write-back views of one source table that write the same column back are warned of
/// (their items' changes are not ordered between them); distinct columns, or views of other
/// tables, are not.
#[test]
fn a_column_two_write_back_views_write_is_warned_of() {
    let dir = temp_dir("sharedwb");
    write(&dir, "rowcast.toml", CONFIG);
    let view = |name: &str, table: &str, source: &str, writable: &str| {
        format!(
            "name = \"{name}\"\ntable = \"{table}\"\nsource = \"{source}\"\n[key]\npk = \"{}#{{id}}\"\n[attributes]\nnote = \"note\"\nmemo = \"Memo\"\nday = \"day\"\n[writeback]\nenabled = true\nattributes = [{writable}]\n",
            name.to_uppercase()
        )
    };
    write(
        &dir,
        "views/a.toml",
        &view("acc", "tab1", "shop.accounts", "\"note\", \"day\""),
    );
    write(
        &dir,
        "views/b.toml",
        &view("profile", "tab2", "shop.accounts", "\"memo\", \"note\""),
    );
    write(
        &dir,
        "views/c.toml",
        &view("other", "tab3", "shop.others", "\"note\""),
    );
    let config = load_with_env(&dir.join("rowcast.toml"), &|_| Some("pw".into())).unwrap();
    let warnings = super::shared_writeback_columns(&config.views);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("a.toml"), "{}", warnings[0]);
    assert!(warnings[0].contains("\"profile\""), "{}", warnings[0]);
    assert!(
        warnings[0].contains("column(s) note of shop.accounts"),
        "{}",
        warnings[0]
    );
    write(
        &dir,
        "views/b.toml",
        &view("profile", "tab2", "shop.accounts", "\"memo\""),
    );
    let config = load_with_env(&dir.join("rowcast.toml"), &|_| Some("pw".into())).unwrap();
    assert!(super::shared_writeback_columns(&config.views).is_empty());
}
