//! Write operations for the sink's unit tests: one key shape (table `t`, attribute `pk`).

use std::sync::Arc;

use crate::pipeline::{Position, WriteOp};
use crate::view::{ItemKey, ItemOp};

/// A plain write of `op` in view `view` at `version`.
pub fn write(view: &str, op: ItemOp, version: u128) -> WriteOp {
    WriteOp {
        view: view.into(),
        op,
        version,
        seq: 1,
        guard: false,
        mark_removal: false,
        restore: false,
        write_back: false,
        origin: Arc::new(Position {
            file: "b.1".into(),
            pos: 4,
            gtid: None,
        }),
    }
}

pub fn delete(view: &str, pk: &str, version: u128) -> WriteOp {
    write(
        view,
        ItemOp::Delete {
            key: ItemKey::for_test(pk),
        },
        version,
    )
}

pub fn put(view: &str, pk: &str, version: u128) -> WriteOp {
    let op = ItemOp::Put {
        key: ItemKey::for_test(pk),
        item: Default::default(),
    };
    write(view, op, version)
}
