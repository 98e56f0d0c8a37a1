//! The snapshot stage: SQL reads of rows that enter the change stream, each in a consistent
//! snapshot whose binlog position MariaDB reports (`worker.rs`): backfill chunks of eager views
//! (`driver.rs`), fills on miss and restores, and join refreshes (`refresh.rs`), with the related
//! rows of views with joins read in the same snapshot (`sql/join.rs`, shared with `verify`).
//!
//! The merge stage puts the rows into the stream at their snapshot position P: a row read there
//! is the row's state at P, ordered after every change before P and before every change after
//! P, so it can neither overwrite a newer change nor bring back a deleted row. Backfill progress
//! (the last primary key per view) rides on the barriers and is committed with the checkpoint,
//! so a restart resumes after the last acknowledged chunk.

pub mod driver;
pub mod refresh;
pub mod worker;

pub use worker::Worker;
