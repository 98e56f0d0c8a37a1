//! DynamoDB Streams records in rowcast's terms: a record as a [`StreamChange`].

use std::collections::HashMap;

use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, Record};

use super::inverse::{ChangeKind, Image, StreamChange};
use crate::view::value::Attr;

/// A stream attribute value in rowcast's terms (number and binary sets as lists).
fn attr(value: &AttributeValue) -> Attr {
    match value {
        AttributeValue::S(s) => Attr::S(s.clone()),
        AttributeValue::N(n) => Attr::N(n.clone()),
        AttributeValue::B(b) => Attr::B(b.as_ref().to_vec()),
        AttributeValue::Ss(items) => Attr::Ss(items.iter().map(|s| s.as_str().into()).collect()),
        AttributeValue::Ns(items) => Attr::L(items.iter().cloned().map(Attr::N).collect()),
        AttributeValue::Bs(items) => {
            Attr::L(items.iter().map(|b| Attr::B(b.as_ref().to_vec())).collect())
        }
        AttributeValue::M(map) => Attr::M(map.iter().map(|(k, v)| (k.clone(), attr(v))).collect()),
        AttributeValue::L(items) => Attr::L(items.iter().map(attr).collect()),
        AttributeValue::Bool(b) => Attr::Bool(*b),
        _ => Attr::Null,
    }
}

fn image(map: Option<&HashMap<String, AttributeValue>>) -> Option<Image> {
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), attr(v))).collect())
}

/// A record as a [`StreamChange`]; `None` for an event type rowcast does not know.
pub fn stream_change(record: &Record) -> Option<StreamChange> {
    let kind = match record.event_name()? {
        OperationType::Insert => ChangeKind::Insert,
        OperationType::Modify => ChangeKind::Modify,
        OperationType::Remove => ChangeKind::Remove,
        _ => return None,
    };
    let data = record.dynamodb()?;
    let ttl = record.user_identity().is_some_and(|identity| {
        identity.r#type() == Some("Service")
            && identity.principal_id() == Some("dynamodb.amazonaws.com")
    });
    Some(StreamChange {
        kind,
        keys: image(data.keys()).unwrap_or_default(),
        old: image(data.old_image()),
        new: image(data.new_image()),
        ttl,
        sequence: data.sequence_number().unwrap_or_default().to_string(),
        created_s: data.approximate_creation_date_time().map(|t| t.secs()),
    })
}

/// An image as plain JSON, for dead letters.
pub fn image_json(image: &Image) -> serde_json::Value {
    serde_json::Value::Object(
        image
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodbstreams::types::{Identity, StreamRecord};

    use super::*;

    #[test]
    fn ttl_removals_are_recognised() {
        let record = |principal: Option<&str>| {
            let mut builder = Record::builder()
                .event_name(OperationType::Remove)
                .dynamodb(
                    StreamRecord::builder()
                        .keys("pk", AttributeValue::S("ACC#1".into()))
                        .old_image("pk", AttributeValue::S("ACC#1".into()))
                        .sequence_number("42")
                        .build(),
                );
            if let Some(principal) = principal {
                builder = builder.user_identity(
                    Identity::builder()
                        .r#type("Service")
                        .principal_id(principal)
                        .build(),
                );
            }
            builder.build()
        };
        let ttl = stream_change(&record(Some("dynamodb.amazonaws.com"))).unwrap();
        assert!(ttl.ttl);
        assert_eq!(ttl.kind, ChangeKind::Remove);
        assert_eq!(ttl.sequence, "42");
        assert!(!stream_change(&record(None)).unwrap().ttl);
        assert!(!stream_change(&record(Some("someone.else"))).unwrap().ttl);
    }
}
