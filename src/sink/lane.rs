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

use tokio::sync::mpsc;
use tokio::time::Instant as TokioInstant;

use super::writer::Writer;
use crate::config::{WriteMode, WriterConfig};
use crate::metrics::metrics;
use crate::pipeline::{Ack, Barrier, DeadLetter, LaneMsg, WriteOp};
use crate::view::ItemKey;

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

/// What a lane hands its windows to (the DynamoDB writer; a recorder in tests).
pub trait Deliver: Send + Sync + 'static {
    /// Writes a window (distinct keys) and records its dead letters; returns once DynamoDB has
    /// acknowledged every write or refused it for good.
    fn deliver(
        &self,
        delivery: Delivery,
        mode: WriteMode,
    ) -> impl std::future::Future<Output = ()> + Send;
}

/// One window's writes and dead letters.
pub struct Delivery {
    pub ops: Vec<WriteOp>,
    pub dead: Vec<DeadLetter>,
}

pub struct Lane<D: Deliver = Writer> {
    pub id: usize,
    pub rx: mpsc::Receiver<LaneMsg>,
    pub acks: mpsc::Sender<Ack>,
    pub writer: Arc<D>,
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

impl<D: Deliver> Lane<D> {
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
        let delivery = Delivery {
            ops: window.ops.drain().map(|(_, op)| op).collect(),
            dead: std::mem::take(&mut window.dead),
        };
        window.opened_at = None;
        // A lane that hangs (a stalled pipeline, for `/healthz`).
        crate::util::failpoint::delay("lane.before_write").await;
        let wrote = !delivery.ops.is_empty();
        self.writer.deliver(delivery, self.config.mode).await;
        if wrote {
            crate::metrics::note_delivery();
        }
        crate::util::failpoint::hit("lane.after_write");
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::pipeline::Position;
    use crate::view::ItemOp;

    /// Records what is delivered and when (in paused time).
    #[derive(Default)]
    struct Recorder {
        deliveries: Mutex<Vec<(TokioInstant, Vec<String>)>>,
    }

    impl Deliver for Recorder {
        async fn deliver(&self, delivery: Delivery, _mode: WriteMode) {
            let mut keys: Vec<String> = delivery
                .ops
                .iter()
                .map(|op| op.op.key().pk.clone())
                .collect();
            keys.sort();
            self.deliveries
                .lock()
                .unwrap()
                .push((TokioInstant::now(), keys));
        }
    }

    fn write(pk: &str, version: u128) -> LaneMsg {
        let key = ItemKey {
            table: "t".into(),
            pk_attribute: "pk".into(),
            pk: pk.into(),
            sk_attribute: None,
            sk: None,
        };
        LaneMsg::Write(WriteOp {
            view: "v".into(),
            op: ItemOp::Delete { key },
            version,
            seq: 1,
            guard: false,
            mark_removal: false,
            restore: false,
            origin: Arc::new(Position {
                file: "b.1".into(),
                pos: 4,
                gtid: None,
            }),
        })
    }

    fn barrier(seq: u64) -> LaneMsg {
        LaneMsg::Barrier(Barrier {
            seq,
            generation: seq,
            backfill: Default::default(),
            position: Position {
                file: "b.1".into(),
                pos: seq,
                gtid: None,
            },
            restart: None,
            commit_ts: 0,
            read_at: Instant::now(),
        })
    }

    struct Running {
        input: mpsc::Sender<LaneMsg>,
        acks: mpsc::Receiver<Ack>,
        recorder: Arc<Recorder>,
    }

    fn start(flush_interval: Duration, max_window_items: usize) -> Running {
        let (input, rx) = mpsc::channel(16);
        let (ack_tx, acks) = mpsc::channel(16);
        let recorder = Arc::new(Recorder::default());
        let config = WriterConfig {
            lanes: 1,
            flush_interval,
            max_window_items,
            queue_capacity: 16,
            mode: WriteMode::Auto,
        };
        let lane = Lane {
            id: 0,
            rx,
            acks: ack_tx,
            writer: recorder.clone(),
            config,
        };
        tokio::spawn(lane.run());
        Running {
            input,
            acks,
            recorder,
        }
    }

    fn deliveries(recorder: &Recorder) -> Vec<(TokioInstant, Vec<String>)> {
        recorder.deliveries.lock().unwrap().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_is_written_one_flush_interval_after_its_first_write() {
        let mut lane = start(Duration::from_millis(20), 100);
        let opened = TokioInstant::now();
        lane.input.send(write("a", 1)).await.unwrap();
        lane.input.send(write("b", 2)).await.unwrap();
        // Two writes of one key in a window: only the last is written.
        lane.input.send(write("a", 3)).await.unwrap();
        lane.input.send(barrier(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(19)).await;
        assert!(
            deliveries(&lane.recorder).is_empty(),
            "written before the interval"
        );
        assert!(
            lane.acks.try_recv().is_err(),
            "acknowledged before it was written"
        );
        let ack = lane.acks.recv().await.unwrap();
        assert_eq!(ack.barrier.seq, 1);
        let written = deliveries(&lane.recorder);
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].0 - opened, Duration::from_millis(20));
        assert_eq!(written[0].1, ["a", "b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_window_is_written_at_once_and_an_empty_barrier_acknowledged_at_once() {
        let mut lane = start(Duration::from_secs(60), 3);
        let opened = TokioInstant::now();
        lane.input.send(barrier(1)).await.unwrap();
        assert_eq!(lane.acks.recv().await.unwrap().barrier.seq, 1);
        assert_eq!(
            TokioInstant::now(),
            opened,
            "an empty window waits for nothing"
        );
        for (i, pk) in ["a", "b", "c"].iter().enumerate() {
            lane.input.send(write(pk, i as u128)).await.unwrap();
        }
        lane.input.send(barrier(2)).await.unwrap();
        assert_eq!(lane.acks.recv().await.unwrap().barrier.seq, 2);
        let written = deliveries(&lane.recorder);
        assert_eq!(written.len(), 1);
        assert_eq!(
            written[0].0, opened,
            "a full window does not wait for the interval"
        );
        drop(lane.input);
    }
}
