//! The checkpoint stage: the ordered commit of the acknowledged prefix (see `tracker.rs`). The
//! checkpoint only ever moves forward; it is stored through `control`.

pub mod tracker;
