//! The files `rowcast suggest` writes: one view spec per proposed view, `rowcast.toml`, and
//! `SUGGESTIONS.md` explaining every choice with the Query a developer would write.

use std::fmt::Write;

use super::design::{Plan, ViewPlan};

/// A TOML string literal.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// A TOML key: bare when it can be, quoted otherwise (a column named `order date`).
fn key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match bare {
        true => name.to_string(),
        false => quoted(name),
    }
}

fn inline_pairs(pairs: &[(String, String)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{} = {}", key(k), quoted(v)))
        .collect();
    format!("{{ {} }}", body.join(", "))
}

pub fn view_file(view: &ViewPlan, database: &str, table: &str) -> String {
    let mut out = String::new();
    let qualified = |t: &str| format!("{database}.{t}");
    let _ = writeln!(
        out,
        "# Proposed by `rowcast suggest` from {}: see SUGGESTIONS.md. Review before use.",
        qualified(&view.source)
    );
    let _ = writeln!(out, "name = {}", quoted(&view.name));
    let _ = writeln!(out, "table = {}", quoted(table));
    let _ = writeln!(out, "source = {}\n", quoted(&qualified(&view.source)));
    let _ = writeln!(
        out,
        "[key]\npk = {}\nsk = {}\n",
        quoted(&view.pk),
        quoted(&view.sk)
    );
    out.push_str("[attributes]\n");
    for attribute in &view.attributes {
        match attribute.conversion {
            None => {
                let _ = writeln!(
                    out,
                    "{} = {}",
                    key(&attribute.name),
                    quoted(&attribute.column)
                );
            }
            Some(conversion) => {
                let _ = writeln!(
                    out,
                    "{} = {{ column = {}, as = {} }}",
                    key(&attribute.name),
                    quoted(&attribute.column),
                    quoted(conversion)
                );
            }
        }
    }
    for lookup in &view.lookups {
        let _ = writeln!(
            out,
            "\n[[lookup]]\nfrom = {}\non = {}\nattributes = {}",
            quoted(&qualified(&lookup.from)),
            inline_pairs(&lookup.on),
            inline_pairs(&lookup.attributes)
        );
    }
    for embed in &view.embeds {
        let order: Vec<String> = embed.order_by.iter().map(|c| quoted(c)).collect();
        let _ = writeln!(
            out,
            "\n[[embed]]\nattribute = {}\nfrom = {}\non = {}\norder_by = [{}]",
            quoted(&embed.attribute),
            quoted(&qualified(&embed.from)),
            inline_pairs(&embed.on),
            order.join(", ")
        );
        let _ = writeln!(
            out,
            "\n[[aggregate]]\nattribute = {}\nfrom = {}\non = {}\nfunction = \"count\"",
            quoted(&embed.count_attribute),
            quoted(&qualified(&embed.from)),
            inline_pairs(&embed.on)
        );
    }
    for index in &view.indexes {
        let _ = writeln!(
            out,
            "\n# {} ({})\n[[index]]\nname = {}\npk = {}\nsk = {}",
            index.serves,
            index.from,
            quoted(&index.name),
            quoted(&index.pk),
            quoted(&index.sk)
        );
    }
    out
}

/// `mysql://user:${ROWCAST_SOURCE_PASSWORD}@host:port`: the password is never written out.
pub fn config_url(url: &str) -> (String, bool) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), false);
    };
    let rest = rest.split(['?']).next().unwrap_or(rest);
    let (auth, host) = match rest.rsplit_once('@') {
        Some((auth, host)) => (Some(auth), host),
        None => (None, rest),
    };
    let host = host.split('/').next().unwrap_or(host);
    match auth {
        Some(auth) => match auth.split_once(':') {
            Some((user, _)) => (
                format!("{scheme}://{user}:${{ROWCAST_SOURCE_PASSWORD}}@{host}"),
                true,
            ),
            None => (format!("{scheme}://{auth}@{host}"), false),
        },
        None => (format!("{scheme}://{host}"), false),
    }
}

pub struct ConfigText<'a> {
    pub url: &'a str,
    pub server_id: u32,
    pub endpoint_url: Option<&'a str>,
}

pub fn config_file(config: &ConfigText, database: &str) -> String {
    let (url, _) = config_url(config.url);
    let mut out = format!(
        "# Proposed by `rowcast suggest` for database {database}: review views/ and SUGGESTIONS.md.\n\
         views = [\"views/*.toml\"]\n\n[source]\n\
         # The password comes from the environment (ROWCAST_SOURCE_PASSWORD) or password_file.\n\
         url = {}\n\
         # Unique among the server's replicas.\n\
         server_id = {}\n\n[dynamodb]\n",
        quoted(&url),
        config.server_id
    );
    if let Some(endpoint) = config.endpoint_url {
        let _ = writeln!(out, "endpoint_url = {}", quoted(endpoint));
    }
    out.push_str("\n[checkpoint]\ntable = \"rowcast_control\"\n");
    out
}

/// A key template with sample values: `ORDER#{id:010}` → `ORDER#0000000042`.
pub fn example(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let inner = &rest[start + 1..start + end];
        match inner.split_once(":0") {
            Some((_, width)) => {
                let width: usize = width.parse().unwrap_or(1);
                let _ = write!(out, "{:0width$}", 42);
            }
            None => {
                let _ = write!(out, "<{inner}>");
            }
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

pub fn suggestions(plan: &Plan, database: &str, table: &str, has_password: bool) -> String {
    let mut out = format!(
        "# Suggested single-table design for `{database}`\n\n\
         Every view below writes to the DynamoDB table `{table}` (keys `pk` / `sk`, strings). GSIs \
         are overloaded: `gsi1`, `gsi2`, … are shared by the views, each with its own key \
         prefixes, attributes `gsiN_pk` / `gsiN_sk`, projection all.\n\n\
         Next: review the views (`views/*.toml`), then\n\n\
         ```\n{}rowcast check --connect --config rowcast.toml\n\
         rowcast tables --config rowcast.toml create\nrowcast run --config rowcast.toml\n\
         rowcast verify --config rowcast.toml\n```\n\n\
         Write-back is off in every view: turn it on per view (`[writeback]`) when the \
         application starts writing to DynamoDB (see the README's migration guide).\n",
        if has_password {
            "export ROWCAST_SOURCE_PASSWORD=…   # or source.password_file\n"
        } else {
            ""
        }
    );
    if !plan.left_out.is_empty() {
        out.push_str("\n## Tables left out\n\n");
        for (name, why) in &plan.left_out {
            let _ = writeln!(out, "- `{name}`: {why}.");
        }
    }
    for view in &plan.views {
        let children: Vec<&ViewPlan> = plan
            .views
            .iter()
            .filter(|v| v.parent.as_deref() == Some(view.source.as_str()))
            .collect();
        view_section(&mut out, view, &children);
    }
    out
}

fn view_section(out: &mut String, view: &ViewPlan, children: &[&ViewPlan]) {
    let _ = writeln!(
        out,
        "\n## `{}` (views/{}.toml)\n\nSource `{}`: about {} rows. Item key `{}` / `{}`{}. \
         Estimated item size: about {} bytes (the table's average row length, attribute names, \
         keys, joins).\n",
        view.name,
        view.name,
        view.source,
        view.rows,
        view.pk,
        view.sk,
        match &view.parent {
            Some(parent) => format!(", under its `{parent}` row's partition"),
            None => String::new(),
        },
        view.estimated_item_bytes
    );
    access_patterns(out, view, children);
    if !view.lookups.is_empty() || !view.embeds.is_empty() {
        out.push_str("\nJoins:\n\n");
        for lookup in &view.lookups {
            let names: Vec<&str> = lookup.attributes.iter().map(|(a, _)| a.as_str()).collect();
            let _ = writeln!(
                out,
                "- lookup of `{}` (many-to-one): {} kept current when the `{}` row changes",
                lookup.from,
                names.join(", "),
                lookup.from
            );
        }
        for embed in &view.embeds {
            let _ = writeln!(
                out,
                "- embed of `{}` as `{}` with `{}` (about {} bytes per item): few rows per parent, read with the item",
                embed.from, embed.attribute, embed.count_attribute, embed.estimated_bytes
            );
        }
    }
    if !view.inferred.is_empty() {
        out.push_str("\nForeign keys read from column names (not declared; declare them to make the design explicit):\n\n");
        for line in &view.inferred {
            let _ = writeln!(out, "- {line}");
        }
    }
    if !view.conversions.is_empty() {
        out.push_str("\nConversions:\n\n");
        for line in &view.conversions {
            let _ = writeln!(out, "- {line}");
        }
    }
    if !view.left_out.is_empty() {
        out.push_str("\nLeft out:\n\n");
        for line in &view.left_out {
            let _ = writeln!(out, "- {line}");
        }
    }
}

/// The Query (or GetItem) a developer would write for each way the view is read.
fn access_patterns(out: &mut String, view: &ViewPlan, children: &[&ViewPlan]) {
    out.push_str("Access patterns:\n\n");
    let (pk, sk) = (example(&view.pk), example(&view.sk));
    let _ = writeln!(
        out,
        "- One {}: `GetItem(Key={{\"pk\": \"{pk}\", \"sk\": \"{sk}\"}})`",
        view.entity.to_ascii_lowercase()
    );
    if view.parent.is_some() {
        let prefix = view.sk.split('#').next().unwrap_or("");
        let _ = writeln!(
            out,
            "- All of one parent's: `Query(KeyConditionExpression=\"pk = :pk AND begins_with(sk, :p)\", :pk=\"{pk}\", :p=\"{prefix}#\")`"
        );
    }
    if let Some(first) = children.first() {
        let names: Vec<&str> = children.iter().map(|c| c.name.as_str()).collect();
        // The children's partition is this row's key (`BOOK#…`), wherever the row itself is.
        let partition = example(&first.pk);
        let with = match view.parent {
            None => format!("The {} with its", view.entity.to_ascii_lowercase()),
            Some(_) => format!("One {}'s", view.entity.to_ascii_lowercase()),
        };
        let _ = writeln!(
            out,
            "- {with} {} in one request: `Query(KeyConditionExpression=\"pk = :pk\", :pk=\"{partition}\")`",
            names.join(", ")
        );
    }
    for index in &view.indexes {
        let _ = writeln!(
            out,
            "- {}: `Query(IndexName=\"{}\", KeyConditionExpression=\"{}_pk = :v\", :v=\"{}\")` (sort key `{}`; from {})",
            index.serves,
            index.name,
            index.name,
            example(&index.pk),
            index.sk,
            index.from
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_written_and_examples_pad() {
        assert_eq!(
            config_url("mysql://app:s3cr@t@10.0.0.5:3306/shop?x=1"),
            (
                "mysql://app:${ROWCAST_SOURCE_PASSWORD}@10.0.0.5:3306".to_string(),
                true
            )
        );
        assert_eq!(config_url("mysql://app@db:3306").0, "mysql://app@db:3306");
        assert_eq!(example("ORDER#{id:010}#{code}"), "ORDER#0000000042#<code>");
    }
}
