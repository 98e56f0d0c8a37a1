//! A writer lane: owns a hash range of item keys, so writes of one item are applied in order,
//! while lanes run in parallel.
//!
//! The lane gathers writes into a window that keeps only the last write per key (coalescing),
//! and flushes it when it holds `max_window_items` keys or is `flush_interval` old. A barrier is
//! acknowledged to the checkpoint tracker once every write received before it is acknowledged
//! by DynamoDB (or dead-lettered). Within one flush every key appears once, so the window's
//! batches can go out concurrently.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::join_all;
use tokio::sync::mpsc;
use tokio::time::Instant as TokioInstant;

use super::writer::Writer;
use crate::config::{WriteMode, WriterConfig};
use crate::dynamo::{item_size, MAX_ITEM_BYTES};
use crate::metrics::metrics;
use crate::pipeline::{Ack, Barrier, DeadLetter, LaneMsg, WriteOp};
use crate::view::{ItemKey, ItemOp};

const BATCH_LIMIT: usize = 25;

#[derive(Debug, thiserror::Error)]
pub enum LaneError {
    #[error("the checkpoint tracker stopped")]
    TrackerGone,
}

impl crate::error::Classify for LaneError {
    fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Definite
    }
}
const CONDITIONAL_CONCURRENCY: usize = 16;

pub struct Lane {
    pub id: usize,
    pub rx: mpsc::Receiver<LaneMsg>,
    pub acks: mpsc::Sender<Ack>,
    pub writer: Arc<Writer>,
    pub config: WriterConfig,
}

#[derive(Default)]
struct Window {
    ops: HashMap<ItemKey, WriteOp>,
    dead: Vec<DeadLetter>,
    barrier: Option<Barrier>,
    opened_at: Option<TokioInstant>,
}

impl Window {
    fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.dead.is_empty()
    }

    fn touch(&mut self) {
        if self.opened_at.is_none() {
            self.opened_at = Some(TokioInstant::now());
        }
    }
}

impl Lane {
    /// Runs until its input closes and the last window is written; fails when the checkpoint
    /// tracker has gone away (no acknowledgement could ever be committed).
    pub async fn run(mut self) -> Result<(), LaneError> {
        let mut window = Window::default();
        let depth_label = format!("lane_{}", self.id);
        loop {
            let deadline = window.opened_at.map(|at| at + self.config.flush_interval);
            let message = tokio::select! {
                biased;
                message = self.rx.recv() => message,
                _ = sleep_until(deadline), if deadline.is_some() => {
                    self.flush(&mut window).await?;
                    continue;
                }
            };
            metrics()
                .queue_depth
                .with_label_values(&[&depth_label])
                .set(self.rx.len() as i64);
            let Some(message) = message else {
                return self.flush(&mut window).await;
            };
            match message {
                LaneMsg::Write(op) => {
                    window.touch();
                    if window.ops.insert(op.op.key().clone(), op).is_some() {
                        metrics().coalesced.inc();
                    }
                }
                LaneMsg::Dead(letter) => {
                    window.touch();
                    window.dead.push(letter);
                }
                LaneMsg::Barrier(barrier) => {
                    if window.is_empty() {
                        self.ack(barrier).await?;
                    } else {
                        window.barrier = Some(barrier);
                    }
                }
            }
            let full = window.ops.len() >= self.config.max_window_items;
            let old = deadline.is_some_and(|d| TokioInstant::now() >= d);
            if full || old {
                self.flush(&mut window).await?;
            }
        }
    }

    async fn ack(&self, barrier: Barrier) -> Result<(), LaneError> {
        self.acks
            .send(Ack {
                lane: self.id,
                barrier,
            })
            .await
            .map_err(|_| LaneError::TrackerGone)
    }

    async fn flush(&self, window: &mut Window) -> Result<(), LaneError> {
        let ops: Vec<WriteOp> = window.ops.drain().map(|(_, op)| op).collect();
        let dead = std::mem::take(&mut window.dead);
        window.opened_at = None;
        let writer = &self.writer;
        for letter in &dead {
            writer.dead_letter(letter).await;
        }
        let mut batched = Vec::new();
        let mut guarded = Vec::new();
        for op in ops {
            if let ItemOp::Put { item, .. } = &op.op {
                let size = item_size(item);
                if size > MAX_ITEM_BYTES {
                    let reason = format!("item is {size} bytes, over DynamoDB's 400 KB limit");
                    writer
                        .dead_letter(&Writer::letter(&op, reason, "too_large"))
                        .await;
                    continue;
                }
            }
            if op.guard
                || op.mark_removal
                || op.restore
                || self.config.mode == WriteMode::Conditional
            {
                guarded.push(op);
            } else {
                batched.push(op);
            }
        }
        let batches = join_all(
            batched
                .chunks(BATCH_LIMIT)
                .map(|chunk| writer.write_batch(chunk)),
        );
        let singles = async {
            for group in guarded.chunks(CONDITIONAL_CONCURRENCY) {
                join_all(group.iter().map(|op| writer.write_single(op, true))).await;
            }
        };
        tokio::join!(batches, singles);
        if let Some(barrier) = window.barrier.take() {
            self.ack(barrier).await?;
        }
        Ok(())
    }
}

async fn sleep_until(deadline: Option<TokioInstant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
