//! The view engine: view specs compiled into plans, and the pure projection of row changes
//! into DynamoDB item writes.

pub mod filter;
pub mod item;
pub mod join;
pub mod name;
pub mod native;
pub mod number;
pub mod project;
pub mod row;
pub mod spec;
pub mod template;
pub mod value;

pub use project::{
    item_key, key_readings, key_values, parse_item_key, project, project_snapshot, removals,
    ItemKey, ItemOp, Projection, Row, TableSchema,
};
pub use spec::{Attributes, TableRef, View};
