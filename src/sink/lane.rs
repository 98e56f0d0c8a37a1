//! A writer lane: owns a hash range of item keys, so writes of one item are applied in order,
//! while lanes run in parallel.
//!
//! The lane gathers writes into a window that keeps only the last write per key (coalescing).
//! One window at a time is in flight: with nothing in flight, the window goes at once with every
//! change already queued (after `linger`, when set); changes that arrive while a window is in
//! flight gather in the next one, which goes as soon as the first is acknowledged. So an idle
//! pipeline writes a change as soon as it is read, and a busy one writes fewer, fuller windows
//! (a burst on one key is written about once per round trip, not once per change). A full
//! window (`max_window_items` keys) stops the lane reading until the one in flight is done: at
//! most two windows per lane are held. A barrier is acknowledged to the checkpoint tracker once
//! every write received before it is acknowledged by DynamoDB (or dead-lettered). Within one
//! window every key appears once, so its batches can go out concurrently.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant as TokioInstant;

use super::writer::Writer;
use crate::config::{WriteMode, WriterConfig};
use crate::metrics::metrics;
use crate::pipeline::{Ack, Barrier, DeadLetter, LaneMsg, Room, WriteOp};
use crate::view::ItemKey;

#[derive(Debug, thiserror::Error)]
pub enum LaneError {
    #[error("the checkpoint tracker stopped")]
    TrackerGone,
    #[error("writes given up (this instance's ownership of the checkpoint is no longer confirmed): the window is neither written nor acknowledged, and will be replayed")]
    Abandoned,
}

impl crate::error::Classify for LaneError {
    fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Definite
    }
}

/// What a lane hands its windows to (the DynamoDB writer; a recorder in tests).
pub trait Deliver: Send + Sync + 'static {
    /// Writes a window (distinct keys) and records its dead letters; returns once DynamoDB has
    /// acknowledged every write or refused it for good (`true`), or once writes were given up
    /// (`false`: the window must not be acknowledged).
    fn deliver(
        &self,
        delivery: Delivery,
        mode: WriteMode,
    ) -> impl std::future::Future<Output = bool> + Send;

    /// When `lane`'s writes of unknown outcome are next due to be written again
    /// (`sink::unsure`).
    fn recheck_due(&self, _lane: usize) -> Option<std::time::Instant> {
        None
    }

    /// The number `lane`'s next write of unknown outcome will have (`sink::unsure`): a barrier
    /// acknowledged now waits for those numbered below it.
    fn loss_epoch(&self, _lane: usize) -> u64 {
        0
    }

    /// The number of `lane`'s oldest write of unknown outcome not written again yet.
    fn oldest_loss(&self, _lane: usize) -> Option<u64> {
        None
    }

    /// Writes again, guarded, some of `lane`'s due writes of unknown outcome: `Some(true)` when
    /// it wrote any, `None` once writes were given up (as `false` of [`Deliver::deliver`]).
    fn recheck(&self, _lane: usize) -> impl std::future::Future<Output = Option<bool>> + Send {
        std::future::ready(Some(false))
    }
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
    /// Keyed through foldhash, seeded at random for each lane (SipHash of a key took about
    /// 800 instructions, for every write, callgrind).
    /// Each with its room in the lanes' byte budget: a write that takes the place of another
    /// gives the other's room back at once (a hot item rewritten while a window is in flight
    /// would otherwise hold room for every rewrite).
    ops: HashMap<ItemKey, (WriteOp, Room), foldhash::quality::RandomState>,
    dead: Vec<DeadLetter>,
    barrier: Option<Barrier>,
    opened_at: Option<TokioInstant>,
    /// Room of the lanes' byte budget for the writes here (`LaneMsg::Write`): given back when
    /// the window is written.
    held: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// `room` joined to `held`.
fn merge_room(held: &mut Room, room: Room) {
    match (held.as_mut(), room) {
        (Some(held), Some(room)) => held.merge(room),
        (None, room) => *held = room,
        (Some(_), None) => {}
    }
}

impl Window {
    fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.dead.is_empty()
    }

    /// Keeps a write's room until the window is written.
    fn hold(&mut self, room: Room) {
        merge_room(&mut self.held, room);
    }

    fn touch(&mut self) {
        if self.opened_at.is_none() {
            self.opened_at = Some(TokioInstant::now());
        }
    }
}

/// The window being written: done when DynamoDB has acknowledged it (`Ok(true)` when it held
/// writes), and the barrier to acknowledge then.
struct InFlight {
    write: Pin<Box<dyn Future<Output = Result<bool, LaneError>> + Send>>,
    barrier: Option<Barrier>,
}

impl<D: Deliver> Lane<D> {
    /// Runs until its input closes and the last window is written; fails when the checkpoint
    /// tracker has gone away (no acknowledgement could ever be committed).
    pub async fn run(mut self) -> Result<(), LaneError> {
        let mut window = Window::default();
        let mut in_flight: Option<InFlight> = None;
        let mut closed = false;
        // Barriers not acknowledged yet while writes of unknown outcome before them wait
        // (`sink::unsure`), by the number of the lane's next loss when each was due.
        let mut held: VecDeque<(u64, Barrier)> = VecDeque::new();
        let mut rechecked_last = false;
        // The gauge's handle, looked up once: this loop turns for every message.
        let depth = metrics()
            .queue_depth
            .with_label_values(&[&format!("lane_{}", self.id)]);
        loop {
            if !held.is_empty() {
                self.release(&mut held).await?;
            }
            // Rechecks and windows take turns, so that neither waits for all of the other.
            let recheck_at = match in_flight {
                None if !rechecked_last || window.is_empty() => self.writer.recheck_due(self.id),
                _ => None,
            };
            if recheck_at.is_some_and(|at| at <= std::time::Instant::now()) {
                in_flight = Some(self.recheck());
                rechecked_last = true;
            } else if in_flight.is_none() && !window.is_empty() {
                let lingered = window
                    .opened_at
                    .is_none_or(|at| at.elapsed() >= self.config.linger);
                if closed || lingered || self.full(&window) {
                    if !closed {
                        self.gather(&mut window, &mut closed);
                    }
                    in_flight = Some(self.send(&mut window));
                    rechecked_last = false;
                }
            }
            if closed && in_flight.is_none() && window.is_empty() {
                // A barrier still held stays unacknowledged: the next start replays from
                // before the writes of unknown outcome, guarded.
                return Ok(());
            }
            let linger = match (&in_flight, window.opened_at) {
                (None, Some(at)) => Some(at + self.config.linger),
                _ => None,
            };
            depth.set(self.rx.len() as i64);
            let receive = !closed && !self.full(&window);
            tokio::select! {
                biased;
                wrote = written(&mut in_flight), if in_flight.is_some() => {
                    let wrote = wrote?; // given up: stop, acknowledging nothing more
                    let done = in_flight.take();
                    if wrote {
                        crate::metrics::note_delivery();
                    }
                    crate::util::failpoint::hit("lane.after_write");
                    self.acknowledge(done.and_then(|d| d.barrier), &mut held).await?;
                }
                message = self.rx.recv(), if receive => {
                    match message {
                        Some(message) => {
                            let barrier = self.take(message, &mut window, &mut in_flight);
                            self.acknowledge(barrier, &mut held).await?;
                        }
                        None => closed = true,
                    }
                }
                _ = sleep_until(linger), if linger.is_some() => {}
                _ = sleep_until(recheck_at.map(TokioInstant::from_std)), if recheck_at.is_some() => {}
                // Looks again whether the hold has ended. Waiting for a recheck's time is
                // DynamoDB's failure, not a stall; a recheck that is due and hangs is one.
                _ = tokio::time::sleep(HOLD_POLL), if !held.is_empty() => {
                    let now = std::time::Instant::now();
                    if self.writer.recheck_due(self.id).is_some_and(|at| at > now) {
                        crate::metrics::note_pushback();
                    }
                }
            }
        }
    }

    /// Dead letters count too: a window held by a refusing DynamoDB must not grow without end.
    fn full(&self, window: &Window) -> bool {
        window.ops.len() + window.dead.len() >= self.config.max_window_items
    }

    /// Every message already queued, into the window (until it is full): what goes out together.
    fn gather(&mut self, window: &mut Window, closed: &mut bool) {
        let mut nothing_in_flight = None;
        // What is queued now, not what keeps coming (a hot key coalesces without filling it).
        let queued = self.rx.len();
        for _ in 0..queued {
            if self.full(window) {
                break;
            }
            match self.rx.try_recv() {
                Ok(message) => {
                    // With nothing in flight and a non-empty window, a barrier always joins it.
                    let _ = self.take(message, window, &mut nothing_in_flight);
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    *closed = true;
                    break;
                }
            }
        }
    }

    /// A message into the window; a barrier with nothing before it unwritten is returned, to
    /// be acknowledged at once.
    fn take(
        &self,
        message: LaneMsg,
        window: &mut Window,
        in_flight: &mut Option<InFlight>,
    ) -> Option<Barrier> {
        match message {
            LaneMsg::Write(op, room) => {
                window.touch();
                match window.ops.entry(op.op.key().clone()) {
                    Entry::Vacant(slot) => {
                        slot.insert((op, room));
                    }
                    Entry::Occupied(mut slot) => {
                        // A put too large to write does not take the place of the change before
                        // it: that one is still written (the item keeps the last state it can
                        // hold, a deleted row's item goes), and this one is a dead letter anyway.
                        match super::writer::Writer::oversized(&op) {
                            Some(letter) => {
                                window.dead.push(letter);
                                window.hold(room);
                            }
                            None => {
                                // The replaced write's room goes back here.
                                slot.insert((op, room));
                                metrics().coalesced.inc();
                            }
                        }
                    }
                }
                None
            }
            LaneMsg::Dead(letter) => {
                window.touch();
                window.dead.push(*letter);
                None
            }
            LaneMsg::Barrier(barrier) => {
                if !window.is_empty() {
                    window.barrier = Some(barrier);
                    None
                } else if let Some(flight) = in_flight {
                    // Everything before it is in the window being written.
                    flight.barrier = Some(barrier);
                    None
                } else {
                    Some(barrier)
                }
            }
        }
    }

    /// Acknowledges `barrier`, or holds it while a write of unknown outcome before it waits to
    /// be written again (`Deliver::oldest_loss`). Held barriers of one loss number are one: the
    /// newest stands for the ones before it (the tracker keeps each lane's latest).
    async fn acknowledge(
        &self,
        barrier: Option<Barrier>,
        held: &mut VecDeque<(u64, Barrier)>,
    ) -> Result<(), LaneError> {
        let Some(barrier) = barrier else {
            return Ok(());
        };
        let epoch = self.writer.loss_epoch(self.id);
        if self
            .writer
            .oldest_loss(self.id)
            .is_some_and(|oldest| oldest < epoch)
        {
            match held.back_mut() {
                Some((last, newest)) if *last == epoch => *newest = barrier,
                _ => held.push_back((epoch, barrier)),
            }
            return Ok(());
        }
        held.clear();
        self.ack(barrier).await
    }

    /// Acknowledges the newest held barrier whose losses before it are all written again.
    async fn release(&self, held: &mut VecDeque<(u64, Barrier)>) -> Result<(), LaneError> {
        let oldest = self.writer.oldest_loss(self.id);
        let mut due = None;
        while let Some((epoch, _)) = held.front() {
            if oldest.is_some_and(|oldest| oldest < *epoch) {
                break;
            }
            due = held.pop_front().map(|(_, barrier)| barrier);
        }
        match due {
            Some(barrier) => self.ack(barrier).await,
            None => Ok(()),
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

    /// The window goes out; the next one starts empty.
    fn send(&self, window: &mut Window) -> InFlight {
        let mut ops = Vec::with_capacity(window.ops.len());
        let mut held = window.held.take();
        for (_, (op, room)) in window.ops.drain() {
            merge_room(&mut held, room);
            ops.push(op);
        }
        let delivery = Delivery {
            ops,
            dead: std::mem::take(&mut window.dead),
        };
        window.opened_at = None;
        let writer = self.writer.clone();
        let mode = self.config.mode;
        let write = async move {
            // The window's room in the byte budget, given back when it is written.
            let _held = held;
            // A lane that hangs (a stalled pipeline, for `/healthz`).
            crate::util::failpoint::delay("lane.before_write").await;
            let wrote = !delivery.ops.is_empty();
            if writer.deliver(delivery, mode).await {
                Ok(wrote)
            } else {
                Err(LaneError::Abandoned)
            }
        };
        InFlight {
            write: Box::pin(write),
            barrier: window.barrier.take(),
        }
    }
}

impl<D: Deliver> Lane<D> {
    /// The due writes of unknown outcome go out as the lane's write in flight (a barrier that
    /// comes meanwhile waits for them, as for a window).
    fn recheck(&self) -> InFlight {
        let (writer, lane) = (self.writer.clone(), self.id);
        let write = async move { writer.recheck(lane).await.ok_or(LaneError::Abandoned) };
        InFlight {
            write: Box::pin(write),
            barrier: None,
        }
    }
}

/// How often a lane holding a barrier looks whether the hold has ended.
const HOLD_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// When the window in flight is acknowledged: whether it held writes.
async fn written(in_flight: &mut Option<InFlight>) -> Result<bool, LaneError> {
    match in_flight {
        Some(flight) => flight.write.as_mut().await,
        None => std::future::pending().await,
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

    /// Records what is delivered and when (in paused time); each delivery takes `takes`.
    #[derive(Default)]
    struct Recorder {
        deliveries: Mutex<Vec<(TokioInstant, Vec<String>)>>,
        takes: Duration,
        /// Deliveries give up (the writer's lease ended).
        gives_up: bool,
        /// Writes of unknown outcome: the lane's next loss number and its oldest one waiting.
        losses: Mutex<(u64, Option<u64>)>,
    }

    impl Deliver for Recorder {
        async fn deliver(&self, delivery: Delivery, _mode: WriteMode) -> bool {
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
            tokio::time::sleep(self.takes).await;
            !self.gives_up
        }

        fn loss_epoch(&self, _lane: usize) -> u64 {
            self.losses.lock().unwrap().0
        }

        fn oldest_loss(&self, _lane: usize) -> Option<u64> {
            self.losses.lock().unwrap().1
        }
    }

    fn write(pk: &str, version: u128) -> LaneMsg {
        LaneMsg::Write(crate::sink::test_ops::delete("v", pk, version), None)
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

    fn start(linger: Duration, max_window_items: usize, takes: Duration) -> Running {
        start_with(
            Recorder {
                takes,
                ..Recorder::default()
            },
            linger,
            max_window_items,
        )
        .0
    }

    fn start_with(
        recorder: Recorder,
        linger: Duration,
        max_window_items: usize,
    ) -> (Running, tokio::task::JoinHandle<Result<(), LaneError>>) {
        let (input, rx) = mpsc::channel(16);
        let (ack_tx, acks) = mpsc::channel(16);
        let recorder = Arc::new(recorder);
        let config = WriterConfig {
            lanes: 1,
            flush_interval: Duration::from_millis(20),
            linger,
            max_window_items,
            queue_capacity: 16,
            mode: WriteMode::Auto,
            recheck_after: Duration::from_secs(60),
        };
        let lane = Lane {
            id: 0,
            rx,
            acks: ack_tx,
            writer: recorder.clone(),
            config,
        };
        let running = tokio::spawn(lane.run());
        (
            Running {
                input,
                acks,
                recorder,
            },
            running,
        )
    }

    /// A window whose writes were given up (the lease ended) is not acknowledged: the lane
    /// stops, so the checkpoint can never pass what was not written.
    #[tokio::test(start_paused = true)]
    async fn a_window_given_up_is_not_acknowledged_and_stops_the_lane() {
        let recorder = Recorder {
            gives_up: true,
            ..Recorder::default()
        };
        let (mut lane, running) = start_with(recorder, Duration::ZERO, 100);
        lane.input.send(write("a", 1)).await.unwrap();
        lane.input.send(barrier(1)).await.unwrap();
        let ended = running.await.unwrap();
        assert!(matches!(ended, Err(LaneError::Abandoned)), "{ended:?}");
        assert_eq!(deliveries(&lane.recorder).len(), 1);
        assert!(
            lane.acks.try_recv().is_err(),
            "acknowledged a window given up"
        );
    }

    /// A lane keeps the byte budget's room sent before a window's writes until that window is
    /// written, then gives it back (the projector waits for it meanwhile).
    #[tokio::test(start_paused = true)]
    async fn the_room_of_a_window_comes_back_when_it_is_written() {
        use futures_util::FutureExt as _;
        let budget = crate::pipeline::ByteBudget::new(1024);
        let mut lane = start(Duration::ZERO, 100, Duration::from_secs(1));
        let room = budget.hold(budget.units(1024)).await;
        let write = crate::sink::test_ops::delete("v", "a", 1);
        lane.input
            .send(LaneMsg::Write(write, Some(room)))
            .await
            .unwrap();
        lane.input.send(barrier(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            budget.hold(1).now_or_never().is_none(),
            "room given back while its window is being written"
        );
        lane.acks.recv().await.expect("acknowledged");
        assert!(budget.hold(budget.units(1024)).now_or_never().is_some());
    }

    /// A write that takes the place of another in a window gives the other's room back at
    /// once: a hot item rewritten while the lane's write is in flight (throttled, say) would
    /// otherwise hold room for every rewrite, and the other lanes would wait for it (found by
    /// a review).
    #[tokio::test(start_paused = true)]
    async fn a_write_replaced_in_a_window_gives_its_room_back() {
        use futures_util::FutureExt as _;
        let budget = crate::pipeline::ByteBudget::new(4 * 256);
        let mut lane = start(Duration::ZERO, 100, Duration::from_secs(1));
        for (pk, version) in [("a", 1), ("b", 1), ("b", 2), ("b", 3)] {
            let room = budget.hold(1).await;
            let write = crate::sink::test_ops::delete("v", pk, version);
            lane.input
                .send(LaneMsg::Write(write, Some(room)))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // `a` in flight, `b` once in the next window: two units of four taken.
        assert!(
            budget.hold(2).now_or_never().is_some(),
            "the replaced writes of b kept their room"
        );
        lane.input.send(barrier(1)).await.unwrap();
        lane.acks.recv().await.expect("acknowledged");
    }

    /// A put too large to write never takes the place of the change before it in a window
    /// (that one is still written); it is a dead letter. A later change of the item does.
    #[tokio::test]
    async fn an_oversized_put_leaves_the_change_before_it_in_the_window() {
        let (_input, rx) = mpsc::channel(1);
        let (acks, _) = mpsc::channel(1);
        let lane = Lane {
            id: 0,
            rx,
            acks,
            writer: Arc::new(Recorder::default()),
            config: WriterConfig {
                lanes: 1,
                flush_interval: Duration::from_millis(20),
                linger: Duration::ZERO,
                max_window_items: 100,
                queue_capacity: 1,
                mode: WriteMode::Auto,
                recheck_after: Duration::from_secs(60),
            },
        };
        let mut window = Window {
            ops: HashMap::default(),
            dead: Vec::new(),
            barrier: None,
            opened_at: None,
            held: None,
        };
        let mut in_flight = None;
        let mut item = crate::view::project::Item::new();
        item.insert(
            "body",
            crate::view::value::Attr::S("x".repeat(crate::dynamo::MAX_ITEM_BYTES)),
        );
        let oversized = crate::sink::test_ops::write(
            "v",
            crate::view::project::ItemOp::Put {
                key: crate::view::project::ItemKey::for_test("a"),
                item,
            },
            2,
        );
        let kinds = |window: &Window| -> Vec<(bool, u128)> {
            let mut ops: Vec<(bool, u128)> = (window.ops.values())
                .map(|(op, _)| {
                    let put = matches!(op.op, crate::view::project::ItemOp::Put { .. });
                    (put, op.version)
                })
                .collect();
            ops.sort();
            ops
        };
        lane.take(write("a", 1), &mut window, &mut in_flight);
        lane.take(
            LaneMsg::Write(oversized.clone(), None),
            &mut window,
            &mut in_flight,
        );
        assert_eq!(kinds(&window), vec![(false, 1)], "the delete stays");
        assert_eq!(window.dead.len(), 1);
        assert_eq!(window.dead[0].reason_kind, "too_large");
        // First of its item in a window it goes in (the writer makes it a dead letter), and a
        // later change of the item takes its place as ever.
        window.ops.clear();
        window.dead.clear();
        lane.take(LaneMsg::Write(oversized, None), &mut window, &mut in_flight);
        assert_eq!(kinds(&window), vec![(true, 2)]);
        lane.take(write("a", 4), &mut window, &mut in_flight);
        assert_eq!(kinds(&window), vec![(false, 4)]);
        assert!(window.dead.is_empty());
    }

    fn deliveries(recorder: &Recorder) -> Vec<(TokioInstant, Vec<String>)> {
        recorder.deliveries.lock().unwrap().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_is_written_one_linger_after_its_first_write() {
        let mut lane = start(Duration::from_millis(20), 100, Duration::ZERO);
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

    /// A barrier after a write of unknown outcome waits until that write is written again
    /// (the newest of those stands for the others); writes go on meanwhile; a barrier before a
    /// later loss goes once the losses before it are written again, whatever came after.
    #[tokio::test(start_paused = true)]
    async fn barriers_wait_for_the_writes_of_unknown_outcome_before_them() {
        let mut lane = start(Duration::ZERO, 100, Duration::ZERO);
        let losses = |next: u64, oldest: Option<u64>| {
            *lane.recorder.losses.lock().unwrap() = (next, oldest);
        };
        losses(1, Some(0)); // loss 0 outstanding
        lane.input.send(write("a", 1)).await.unwrap();
        lane.input.send(barrier(1)).await.unwrap();
        lane.input.send(write("b", 2)).await.unwrap();
        lane.input.send(barrier(2)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let written: usize = deliveries(&lane.recorder)
            .iter()
            .map(|(_, keys)| keys.len())
            .sum();
        assert_eq!(written, 2, "writes go on");
        assert!(lane.acks.try_recv().is_err(), "acknowledged while holding");
        losses(2, Some(0)); // loss 1 too
        lane.input.send(barrier(3)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        losses(2, Some(1)); // loss 0 written again: barrier 2 goes, 3 waits for loss 1
        assert_eq!(lane.acks.recv().await.unwrap().barrier.seq, 2);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(lane.acks.try_recv().is_err(), "barrier 3 waits for loss 1");
        losses(2, None);
        assert_eq!(lane.acks.recv().await.unwrap().barrier.seq, 3);
        lane.input.send(barrier(4)).await.unwrap();
        assert_eq!(lane.acks.recv().await.unwrap().barrier.seq, 4);
        drop(lane.input);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_window_is_written_at_once_and_an_empty_barrier_acknowledged_at_once() {
        let mut lane = start(Duration::from_secs(60), 3, Duration::ZERO);
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

    #[tokio::test(start_paused = true)]
    async fn with_nothing_in_flight_a_change_goes_at_once_and_the_next_gather_meanwhile() {
        let write_takes = Duration::from_millis(10);
        let mut lane = start(Duration::ZERO, 100, write_takes);
        let t0 = TokioInstant::now();
        lane.input.send(write("a", 1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        // While `a` is written: a barrier (acknowledged once `a` is), then a burst on `b`.
        lane.input.send(barrier(1)).await.unwrap();
        for version in 2..7 {
            lane.input.send(write("b", version)).await.unwrap();
        }
        lane.input.send(write("c", 7)).await.unwrap();
        lane.input.send(barrier(2)).await.unwrap();
        let first = lane.acks.recv().await.unwrap();
        assert_eq!(first.barrier.seq, 1);
        assert_eq!(TokioInstant::now() - t0, write_takes);
        let second = lane.acks.recv().await.unwrap();
        assert_eq!(second.barrier.seq, 2);
        assert_eq!(TokioInstant::now() - t0, write_takes * 2);
        let written = deliveries(&lane.recorder);
        assert_eq!(written.len(), 2, "the burst is written once");
        assert_eq!(
            (written[0].0 - t0, &written[0].1[..]),
            (Duration::ZERO, &["a".to_string()][..])
        );
        assert_eq!(
            written[1].0 - t0,
            write_takes,
            "the next window goes when the first is done"
        );
        assert_eq!(written[1].1, ["b", "c"]);
        drop(lane.input);
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_full_of_dead_letters_stops_the_lane_reading_while_one_is_in_flight() {
        let lane = start(Duration::ZERO, 3, Duration::from_secs(10));
        lane.input.send(write("a", 1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        for seq in 0..10 {
            let letter = DeadLetter {
                view: "v".into(),
                key: None,
                pk: None,
                sk: None,
                reason: "bad".into(),
                reason_kind: "bad",
                position: Position {
                    file: "b.1".into(),
                    pos: 4,
                    gtid: None,
                },
                seq,
                at_ms: 0,
                record: None,
            };
            lane.input
                .send(LaneMsg::Dead(Box::new(letter)))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        // The window holds three; the other seven wait in the channel.
        assert_eq!(lane.input.max_capacity() - lane.input.capacity(), 7);
    }
}
