//! Plain writes whose outcome is unknown, written again later with the version guard.
//!
//! A plain write (BatchWriteItem, or a PutItem/DeleteItem without a condition) that fails
//! without DynamoDB's answer that it did nothing (a timeout, a connection lost after the request
//! went out, a server error) may have been applied, and may still be applied later: a request
//! delayed in the network, or one DynamoDB finishes after the client gave up on it. The lane
//! retries it and goes on, and a later write of the same item can then land *before* the lost
//! one, which moves the item back to the older state for good (nothing else writes it again
//! until its row changes). Its version cannot stop it: the lost request carries no condition.
//!
//! So the items of such a request are kept here, each with the latest write of its item that
//! its lane delivers after it, and written again by the lane that owns the item (in the item's
//! order, as its only write in flight) `writer.recheck_after_ms` after the last unknown outcome,
//! as a conditional write: a put only over an older version of the item
//! (`attribute_exists(#v) AND #v < :v`), or also where the item is absent if a lost write of it
//! was a delete (which, landing late, removed it); a delete only of an older version. Where the
//! lost request landed late its older state is replaced; elsewhere the condition fails and
//! nothing is written (an item removed meanwhile by a cleanup or TTL stays removed).
//!
//! Until a lost write is written again, the lane that owns it holds the acknowledgements of the
//! barriers that came after it ([`Unsure::loss_epoch`], [`Unsure::oldest_loss`]: each loss has
//! a number on its lane, each barrier waits only for the losses numbered before it), so the
//! checkpoint stays before the lost write, and only that long: a restart after a crash, a drain
//! or a reload replays it, guarded (`writer.mode = "auto"` guards what it
//! replays). A clean stop saves the items still kept (`control::kept`, [`Carried::kept`]); the
//! next process keeps each again when its replay delivers the item's write ([`Suspect`]).
//! A request that lands later than the window can still move an item back (see the
//! README's Known limitations). Views of a table with a write-back view never write plainly
//! (`WriteOp::write_back`): a late landing there would look like an application's change to
//! write-back and be applied to SQL before any recheck.
//!
//! Memory is bounded: past [`MAX_KEYS`] items or [`MAX_BYTES`] of them, further ones (and an
//! entry that would grow past the bound) are counted
//! (`rowcast_rechecked_writes_total{outcome="untracked"}`) and not kept.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::warn;

use crate::metrics::metrics;
use crate::pipeline::lane_of;
use crate::pipeline::WriteOp;
use crate::view::{ItemKey, ItemOp};

/// Items kept at most.
pub const MAX_KEYS: usize = 100_000;
/// Bytes of kept items at most (DynamoDB's count of names and values, plus [`OVERHEAD`] each).
pub const MAX_BYTES: usize = 64 << 20;
/// What an entry costs besides its item: its key (kept three times) and bookkeeping.
const OVERHEAD: usize = 256;
/// Writes one lane writes again at a time: then its windows go, then the next ones.
pub const RECHECK_BATCH: usize = 100;

pub struct Unsure {
    after: Duration,
    lanes: usize,
    /// Where what is still kept goes when the pipeline is done with it (a reload's drain), for
    /// the next pipeline of the process.
    carried: Option<Arc<Carried>>,
    /// Whether anything is kept or being written again: the lanes' common path reads only
    /// this.
    tracking: AtomicBool,
    state: Mutex<State>,
}

/// A kept write to write again; `absent_ok`: the item may be written where it is absent (a lost
/// write of it was a delete).
#[derive(Debug, Clone)]
pub struct Recheck {
    pub op: WriteOp,
    pub absent_ok: bool,
    /// The number of its first loss on its lane.
    epoch: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<ItemKey, Entry>,
    /// Each lane's entries by when they are due (and a number that tells one instant's apart).
    due: Vec<BTreeMap<(Instant, u64), ItemKey>>,
    next: u64,
    /// Per lane: losses numbered so far, and the numbers of those not written again yet (kept
    /// or being written again), with how many entries carry each.
    losses: Vec<u64>,
    outstanding: Vec<BTreeMap<u64, usize>>,
    bytes: usize,
    /// Whether the bound was met and said so (one warning per episode).
    full: bool,
    /// Items kept by the process before this one, at its stop ([`Carried::suspect`]): the
    /// first write of each that a lane delivers (the replay's) is kept as if it had been lost,
    /// due when it was. Forgotten at `suspects_until`, if the replay has not reached them.
    suspects: HashMap<ItemKey, Suspect>,
    suspects_until: Option<Instant>,
}

/// An item the process before kept at its stop.
#[derive(Debug, Clone)]
pub struct Suspect {
    view: String,
    key: ItemKey,
    absent_ok: bool,
    due: Instant,
}

struct Entry {
    lane: usize,
    at: (Instant, u64),
    recheck: Recheck,
    bytes: usize,
    /// The item lost again while kept: that loss's number (counted outstanding) and when its
    /// own window ends. The entry stays due when it was; taken then, it is kept again for this
    /// window, so an item that keeps losing writes does not hold its first loss for ever.
    again: Option<(u64, Instant)>,
}

impl Entry {
    /// The loss numbers this entry holds outstanding.
    fn epochs(&self) -> impl Iterator<Item = u64> {
        std::iter::once(self.recheck.epoch).chain(self.again.map(|(epoch, _)| epoch))
    }

    /// When its last window ends.
    fn last_due(&self) -> Instant {
        self.again.map_or(self.at.0, |(_, due)| due.max(self.at.0))
    }
}

fn size(op: &WriteOp) -> usize {
    OVERHEAD
        + match &op.op {
            ItemOp::Put { item, .. } => crate::dynamo::item_size(item, &op.view),
            ItemOp::Delete { key } => key.pk.len() + key.sk.as_ref().map_or(0, String::len),
        }
}

impl State {
    /// Not kept: counted, and said once per episode.
    fn untracked(&mut self) {
        metrics()
            .rechecked_writes
            .with_label_values(&["untracked"])
            .inc();
        if !self.full {
            self.full = true;
            warn!(
                keys = self.entries.len(),
                bytes = self.bytes,
                "too many writes of unknown outcome to keep: further ones will not be written again (a late landing of one can leave its item older until its row changes, or `rowcast verify --repair`)"
            );
        }
    }

    fn remove(&mut self, key: &ItemKey) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.due[entry.lane].remove(&entry.at);
        self.bytes -= entry.bytes;
        Some(entry)
    }

    /// An entry no longer kept: its losses are resolved.
    fn drop_entry(&mut self, entry: &Entry) {
        for epoch in entry.epochs() {
            self.resolved(entry.lane, epoch);
        }
    }

    /// A loss numbered `epoch` on `lane` is written again, or no longer kept.
    fn resolved(&mut self, lane: usize, epoch: u64) {
        let Some(count) = self.outstanding[lane].get_mut(&epoch) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            self.outstanding[lane].remove(&epoch);
        }
    }

    /// Puts `entry` back (or in) unless the bound is met: then its loss is resolved (not kept).
    fn insert(&mut self, key: &ItemKey, entry: Entry) {
        if self.entries.len() >= MAX_KEYS || self.bytes + entry.bytes > MAX_BYTES {
            self.untracked();
            self.drop_entry(&entry);
            return;
        }
        self.bytes += entry.bytes;
        self.due[entry.lane].insert(entry.at, key.clone());
        self.entries.insert(key.clone(), entry);
    }
}

/// Writes of unknown outcome a drained pipeline still kept, each with when it was due: a reload
/// starts the next pipeline with them, so that a lost request landing after the reload is still
/// written over (the next start's replay comes before it). A stop saves their items for the
/// next process ([`Carried::kept`], `control::kept`), which takes them up as suspects.
#[derive(Default)]
pub struct Carried {
    writes: Mutex<Vec<(Instant, Recheck)>>,
    suspects: Mutex<Vec<Suspect>>,
    /// Whether what the process before saved was read ([`Carried::first_start`]).
    started: AtomicBool,
    /// Whether the pipeline that took up what is carried has handed it back (its [`Unsure`]
    /// was dropped): what a stop saves is complete only then.
    handed: AtomicBool,
    /// The pipeline drains for a reload: the next one takes up what is carried in memory.
    reload: AtomicBool,
}

/// How long after its time an item the process before kept is still taken up when the replay
/// delivers it (`writer.recheck_after_ms` more, at least this).
const SUSPECT_PATIENCE: Duration = Duration::from_secs(600);

impl Carried {
    /// What is carried, to save at a stop: every item, due when it is.
    pub fn kept(&self) -> Vec<crate::control::kept::KeptWrite> {
        let (now, now_ms) = (Instant::now(), crate::util::now_millis());
        let due_ms = |due: Instant| {
            let ahead = due.saturating_duration_since(now).as_millis();
            now_ms + u64::try_from(ahead).unwrap_or(u64::MAX / 2)
        };
        let kept = |view: &str, key: &ItemKey, absent_ok: bool, due: Instant| {
            crate::control::kept::KeptWrite {
                view: view.to_string(),
                table: key.table.to_string(),
                pk_attribute: key.pk_attribute.to_string(),
                pk: key.pk.clone(),
                sk_attribute: key.sk_attribute.as_ref().map(|s| s.to_string()),
                sk: key.sk.clone(),
                absent_ok,
                due_ms: due_ms(due),
            }
        };
        let writes = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let suspects = self.suspects.lock().unwrap_or_else(|e| e.into_inner());
        let from_writes = writes
            .iter()
            .map(|(due, r)| kept(&r.op.view, r.op.op.key(), r.absent_ok, *due));
        let from_suspects = suspects
            .iter()
            .map(|s| kept(&s.view, &s.key, s.absent_ok, s.due));
        from_writes.chain(from_suspects).collect()
    }

    /// The pipeline drains for a reload (until the next one takes up what is carried).
    pub fn reloading(&self) {
        self.reload.store(true, Ordering::SeqCst);
    }

    /// Whether the pipeline drains for a reload.
    pub fn for_reload(&self) -> bool {
        self.reload.load(Ordering::SeqCst)
    }

    /// Whether the pipeline that took up what is carried has handed it back.
    pub fn handed_over(&self) -> bool {
        self.handed.load(Ordering::SeqCst)
    }

    /// `true` the first time only: the process's first pipeline reads what the process before
    /// saved.
    pub fn first_start(&self) -> bool {
        !self.started.swap(true, Ordering::SeqCst)
    }

    /// Takes up what the process before saved at its stop.
    pub fn suspect(&self, kept: Vec<crate::control::kept::KeptWrite>) {
        let (now, now_ms) = (Instant::now(), crate::util::now_millis());
        let suspects = kept.into_iter().map(|k| Suspect {
            key: ItemKey {
                table: k.table.as_str().into(),
                pk_attribute: k.pk_attribute.as_str().into(),
                pk: k.pk,
                sk_attribute: k.sk_attribute.as_deref().map(Into::into),
                sk: k.sk,
            },
            view: k.view,
            absent_ok: k.absent_ok,
            // At most a day ahead (`carrying` then bounds it by the window).
            due: now + Duration::from_millis(k.due_ms.saturating_sub(now_ms).min(86_400_000)),
        });
        self.suspects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(suspects);
    }
}

impl Drop for Unsure {
    fn drop(&mut self) {
        let Some(carried) = &self.carried else {
            return;
        };
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        // An item lost again is carried once, due at its last window's end.
        let left: Vec<(Instant, Recheck)> = state
            .entries
            .drain()
            .map(|(_, entry)| (entry.last_due(), entry.recheck))
            .collect();
        carried
            .writes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(left);
        carried
            .suspects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(state.suspects.drain().map(|(_, suspect)| suspect));
        carried.handed.store(true, Ordering::SeqCst);
    }
}

impl Unsure {
    pub fn new(after: Duration, lanes: usize) -> Unsure {
        Self::with_carried(after, lanes, None)
    }

    /// [`Unsure::new`] that takes up what the pipeline before left in `carried` (each write
    /// kept until its time, on the lane that owns it now) and leaves there what it keeps when
    /// it is dropped.
    /// `views`: the next pipeline's views and their tables. Writes of a view the reload removed,
    /// or whose table changed, are not taken up (counted `untracked`): nothing writes there now.
    pub fn carrying(
        after: Duration,
        lanes: usize,
        carried: Arc<Carried>,
        views: &[(&str, &str)],
    ) -> Unsure {
        let taken = std::mem::take(&mut *carried.writes.lock().unwrap_or_else(|e| e.into_inner()));
        let suspects =
            std::mem::take(&mut *carried.suspects.lock().unwrap_or_else(|e| e.into_inner()));
        carried.handed.store(false, Ordering::SeqCst);
        carried.reload.store(false, Ordering::SeqCst);
        let unsure = Self::with_carried(after, lanes, Some(carried));
        {
            let mut state = unsure.state();
            let mut gone = 0usize;
            let written = |view: &str, key: &ItemKey| {
                views
                    .iter()
                    .any(|(name, table)| *name == view && **table == *key.table)
            };
            for suspect in suspects {
                if !written(&suspect.view, &suspect.key) {
                    gone += 1;
                    continue;
                }
                // Due no later than a window from now: the time was read on the clock of the
                // host before, which may run ahead of this one's (a far time would hold the
                // checkpoint that long).
                let now = Instant::now();
                let suspect = Suspect {
                    due: suspect.due.min(now + after),
                    ..suspect
                };
                let until = suspect.due.max(now) + after.max(SUSPECT_PATIENCE);
                state.suspects_until = state.suspects_until.max(Some(until));
                state.suspects.insert(suspect.key.clone(), suspect);
            }
            for (due, recheck) in taken {
                let op = &recheck.op;
                if !written(&op.view, op.op.key()) {
                    gone += 1;
                    continue;
                }
                unsure.keep_until(&mut state, op, recheck.absent_ok, due);
            }
            if gone > 0 {
                metrics()
                    .rechecked_writes
                    .with_label_values(&["untracked"])
                    .inc_by(gone as u64);
                warn!(
                    gone,
                    "writes of unknown outcome of views the reload removed or moved are not written again"
                );
            }
            unsure.track(&state);
        }
        unsure
    }

    fn with_carried(after: Duration, lanes: usize, carried: Option<Arc<Carried>>) -> Unsure {
        let lanes = lanes.max(1);
        Unsure {
            after,
            lanes,
            carried,
            tracking: AtomicBool::new(false),
            state: Mutex::new(State {
                due: vec![BTreeMap::new(); lanes],
                losses: vec![0; lanes],
                outstanding: vec![BTreeMap::new(); lanes],
                ..State::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn track(&self, state: &State) {
        let any = state.outstanding.iter().any(|o| !o.is_empty()) || !state.suspects.is_empty();
        self.tracking.store(any, Ordering::SeqCst);
    }

    /// The writes of a plain request whose outcome is unknown: written again after the window
    /// (an item already kept starts its window again).
    pub fn lost<'a>(&self, ops: impl IntoIterator<Item = &'a WriteOp>) {
        let mut state = self.state();
        // One request's writes, due together.
        let due = Instant::now() + self.after;
        for op in ops {
            // A marked removal removes no newer version when it lands late. Every other write
            // is kept, conditional ones too (a write-back table's, a restore): a put landing
            // late on an item that a later delete removed is let in by its guard.
            if op.mark_removal {
                continue;
            }
            let deleted = matches!(op.op, ItemOp::Delete { .. });
            self.keep_at(&mut state, op, deleted, None, due);
        }
        self.track(&state);
    }

    /// A kept write whose write again had an unknown outcome itself: kept again, as it was
    /// (its loss still unresolved; the caller then calls [`Unsure::finished`] as for the rest).
    pub fn lost_again(&self, recheck: &Recheck) {
        let mut state = self.state();
        self.keep(
            &mut state,
            &recheck.op,
            recheck.absent_ok,
            Some(recheck.epoch),
        );
        self.track(&state);
    }

    /// Keeps `op`'s item: a new entry numbered as its lane's next loss (or `epoch`, a loss
    /// taken up again), or the entry already kept, which keeps its number.
    fn keep(&self, state: &mut State, op: &WriteOp, deleted: bool, epoch: Option<u64>) {
        self.keep_at(state, op, deleted, epoch, Instant::now() + self.after);
    }

    /// A write carried over from the pipeline before, due when it was there (a new loss on its
    /// lane now).
    fn keep_until(&self, state: &mut State, op: &WriteOp, deleted: bool, due: Instant) {
        let lane = lane_of(op.op.key(), self.lanes);
        let epoch = state.losses[lane];
        state.losses[lane] += 1;
        self.keep_at(state, op, deleted, Some(epoch), due);
    }

    fn keep_at(
        &self,
        state: &mut State,
        op: &WriteOp,
        deleted: bool,
        epoch: Option<u64>,
        due: Instant,
    ) {
        let key = op.op.key();
        let id = state.next;
        state.next += 1;
        let at = (due, id);
        let entry = match state.remove(key) {
            Some(mut entry) if epoch.is_none() => {
                // Lost again while kept: due when it was, and kept again for this loss's
                // window when taken (see `Entry::again`).
                entry.at.1 = id;
                let lane = entry.lane;
                let number = match entry.again {
                    Some((number, _)) => number,
                    None => {
                        state.losses[lane] += 1;
                        let number = state.losses[lane] - 1;
                        *state.outstanding[lane].entry(number).or_insert(0) += 1;
                        number
                    }
                };
                entry.again = Some((number, due));
                entry.recheck.absent_ok |= deleted;
                if op.version >= entry.recheck.op.version {
                    entry.recheck.op = op.clone();
                    entry.bytes = size(op);
                }
                entry
            }
            Some(mut entry) => {
                entry.at = at;
                entry.recheck.absent_ok |= deleted;
                if op.version >= entry.recheck.op.version {
                    entry.recheck.op = op.clone();
                    entry.bytes = size(op);
                }
                // A loss taken up again merges into the entry with the older number (its own
                // count is resolved by `finished`).
                if let Some(epoch) = epoch.filter(|e| *e < entry.recheck.epoch) {
                    *state.outstanding[entry.lane].entry(epoch).or_insert(0) += 1;
                    state.resolved(entry.lane, entry.recheck.epoch);
                    entry.recheck.epoch = epoch;
                }
                entry
            }
            None => {
                let lane = lane_of(key, self.lanes);
                let epoch = epoch.unwrap_or_else(|| {
                    metrics().unsure_writes.inc();
                    state.losses[lane] += 1;
                    state.losses[lane] - 1
                });
                // Counted outstanding for the entry (a loss taken up again: once more, as
                // `finished` resolves it once).
                *state.outstanding[lane].entry(epoch).or_insert(0) += 1;
                Entry {
                    lane,
                    at,
                    recheck: Recheck {
                        op: op.clone(),
                        absent_ok: deleted,
                        epoch,
                    },
                    bytes: size(op),
                    again: None,
                }
            }
        };
        state.insert(key, entry);
    }

    /// A later write of an item kept here: the state it is written again with.
    pub fn follow(&self, op: &WriteOp) {
        if !self.tracking.load(Ordering::SeqCst) {
            return;
        }
        let mut state = self.state();
        let key = op.op.key();
        let Some(mut entry) = state.remove(key) else {
            self.take_up(&mut state, op);
            return;
        };
        // A marked removal or a restore is written again as itself (`Writer::send_single`).
        if op.version >= entry.recheck.op.version {
            entry.recheck.op = op.clone();
            entry.bytes = size(op);
        }
        state.insert(key, entry);
        self.track(&state);
    }

    /// `op`'s item, if the process before kept it: kept now with `op`, due when it was there.
    /// Whatever `op` is: the write lost before the stop is another, and `op` (a marked removal
    /// included) is the state to write again over its late landing (a review found marked
    /// removals dropped here: a lost put landing after its row's delete made the item again).
    fn take_up(&self, state: &mut State, op: &WriteOp) {
        if state.suspects.is_empty() {
            return;
        }
        if state
            .suspects_until
            .is_some_and(|until| until < Instant::now())
        {
            state.suspects.clear();
        } else if let Some(suspect) = state.suspects.remove(op.op.key()) {
            if *suspect.view == *op.view {
                metrics().unsure_writes.inc();
                self.keep_until(state, op, suspect.absent_ok, suspect.due);
            }
        }
        self.track(state);
    }

    /// When `lane`'s first kept write is due.
    pub fn next_due(&self, lane: usize) -> Option<Instant> {
        if !self.tracking.load(Ordering::SeqCst) {
            return None;
        }
        let state = self.state();
        state.due.get(lane)?.keys().next().map(|(at, _)| *at)
    }

    /// The number `lane`'s next loss will have: a barrier acknowledged now waits for the
    /// losses numbered below it.
    pub fn loss_epoch(&self, lane: usize) -> u64 {
        if !self.tracking.load(Ordering::SeqCst) {
            // Nothing outstanding: any number lets a barrier through.
            return 0;
        }
        self.state().losses.get(lane).copied().unwrap_or(0)
    }

    /// The number of `lane`'s oldest loss not written again yet: barriers numbered above it
    /// wait.
    pub fn oldest_loss(&self, lane: usize) -> Option<u64> {
        if !self.tracking.load(Ordering::SeqCst) {
            return None;
        }
        let state = self.state();
        state.outstanding.get(lane)?.keys().next().copied()
    }

    /// The writes [`Unsure::take_due`] gave to `lane` are written (or given up, or kept again).
    pub fn finished(&self, lane: usize, rechecks: &[Recheck]) {
        let mut state = self.state();
        for recheck in rechecks {
            state.resolved(lane, recheck.epoch);
        }
        self.track(&state);
    }

    /// Up to [`RECHECK_BATCH`] of `lane`'s kept writes that are due, no longer kept; the lane
    /// writes them and then calls [`Unsure::finished`].
    pub fn take_due(&self, lane: usize) -> Vec<Recheck> {
        if !self.tracking.load(Ordering::SeqCst) {
            return Vec::new();
        }
        let now = Instant::now();
        let mut state = self.state();
        let mut due = Vec::new();
        while due.len() < RECHECK_BATCH {
            let Some(first) = state.due.get_mut(lane).and_then(|d| d.first_entry()) else {
                break;
            };
            if first.key().0 > now {
                break;
            }
            let key = first.get().clone();
            let Some(entry) = state.remove(&key) else {
                continue;
            };
            if let Some((number, until)) = entry.again {
                // Lost again since: kept again under that loss's number, for its window.
                let id = state.next;
                state.next += 1;
                let kept = Entry {
                    lane: entry.lane,
                    at: (until, id),
                    recheck: Recheck {
                        epoch: number,
                        ..entry.recheck.clone()
                    },
                    bytes: entry.bytes,
                    again: None,
                };
                state.insert(&key, kept);
            }
            due.push(entry.recheck);
        }
        // Their losses stay outstanding until `finished`.
        if state.entries.is_empty() {
            state.full = false;
        }
        self.track(&state);
        due
    }

    #[cfg(test)]
    fn kept(&self) -> usize {
        self.state().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::test_ops::{delete, put};

    fn lane(pk: &str, lanes: usize) -> usize {
        lane_of(delete("v", pk, 0).op.key(), lanes)
    }

    /// A lost write is due after the window, with the latest write of its item delivered since;
    /// an older one does not take its place; a write of another item is not kept. A lost delete
    /// lets the write again create the item.
    #[test]
    fn a_lost_write_is_due_after_the_window_with_its_items_latest_state() {
        let unsure = Unsure::new(Duration::from_millis(40), 1);
        assert_eq!(unsure.next_due(0), None);
        assert_eq!(unsure.oldest_loss(0), None);
        unsure.follow(&delete("v", "a", 9)); // nothing kept: nothing to follow
        unsure.lost([&put("v", "a", 5), &delete("v", "b", 5)]);
        unsure.follow(&put("v", "a", 7));
        unsure.follow(&put("v", "a", 6)); // older than the one followed
        unsure.follow(&delete("v", "c", 8)); // not kept
        unsure.follow(&put("v", "b", 6));
        assert_eq!(unsure.kept(), 2);
        assert!(unsure.take_due(0).is_empty(), "due before the window");
        let due = unsure.next_due(0).expect("a due time");
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let taken = unsure.take_due(0);
        let mut rechecks: Vec<(String, u128, bool)> = taken
            .iter()
            .map(|r| (r.op.op.key().pk.clone(), r.op.version, r.absent_ok))
            .collect();
        rechecks.sort();
        assert_eq!(
            rechecks,
            [("a".to_string(), 7, false), ("b".to_string(), 6, true)]
        );
        assert_eq!(unsure.next_due(0), None);
        assert_eq!(unsure.kept(), 0);
        assert_eq!(
            unsure.oldest_loss(0),
            Some(0),
            "held until they are written"
        );
        assert_eq!(unsure.loss_epoch(0), 2);
        unsure.finished(0, &taken[..1]);
        assert!(unsure.oldest_loss(0).is_some());
        unsure.finished(0, &taken[1..]);
        assert_eq!(unsure.oldest_loss(0), None);
    }

    /// A write lost again is written again when first due and for its later window; each lane
    /// takes only the items it owns.
    #[test]
    fn a_write_lost_again_is_written_again_for_each_window_and_each_lane_takes_its_own() {
        let unsure = Unsure::new(Duration::from_millis(20), 4);
        let (a, b) = (
            "a",
            (0..100)
                .map(|i| format!("k{i}"))
                .find(|k| lane(k, 4) != lane("a", 4))
                .expect("another lane"),
        );
        unsure.lost([&delete("v", a, 5), &delete("v", &b, 5)]);
        let first = unsure.next_due(lane(a, 4)).expect("due");
        std::thread::sleep(Duration::from_millis(5));
        unsure.lost([&delete("v", a, 6)]);
        assert_eq!(
            unsure.next_due(lane(a, 4)),
            Some(first),
            "due when first lost"
        );
        std::thread::sleep(Duration::from_millis(30));
        let taken = unsure.take_due(lane(&b, 4));
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].op.op.key().pk, b);
        // a: its write again now, and kept again for its second window (already over here).
        let taken = unsure.take_due(lane(a, 4));
        assert_eq!(taken.len(), 2);
        assert!(taken.iter().all(|r| r.op.version == 6));
        assert_eq!(unsure.kept(), 0);
    }

    /// Marked removals are never kept (landing late they remove no newer version); other
    /// conditional writes are (a write-back table's put landing late on an item a later delete
    /// removed), and a kept item follows its later writes, marked removals too. An entry that
    /// would grow past the bound is dropped, not kept over it.
    #[test]
    fn marked_removals_are_not_kept_guarded_puts_are_and_the_bound_holds() {
        let unsure = Unsure::new(Duration::ZERO, 1);
        let mut removal = delete("v", "a", 5);
        removal.mark_removal = true;
        unsure.lost([&removal]);
        assert_eq!(unsure.kept(), 0);
        assert_eq!(unsure.oldest_loss(0), None, "nothing kept: nothing waits");
        let mut guarded = put("v", "a", 5);
        guarded.write_back = true;
        unsure.lost([&guarded]);
        assert_eq!(unsure.kept(), 1);
        let mut later = delete("v", "a", 7);
        later.mark_removal = true;
        later.write_back = true;
        unsure.follow(&later);
        let taken = unsure.take_due(0);
        assert_eq!(taken.len(), 1);
        assert!(taken[0].op.mark_removal && taken[0].op.version == 7);
        let unsure = Unsure::new(Duration::from_secs(60), 1);
        unsure.lost([&delete("v", "b", 5)]);
        unsure.state().bytes = MAX_BYTES - 10; // nearly full
        let mut big = put("v", "b", 6);
        if let ItemOp::Put { item, .. } = &mut big.op {
            *item = crate::view::item::Item::from_entries(vec![(
                "x".into(),
                crate::view::value::Attr::S("y".repeat(100)),
            )]);
        }
        unsure.follow(&big);
        assert_eq!(unsure.kept(), 0, "grew past the bound: dropped");
        assert_eq!(unsure.oldest_loss(0), None);
    }

    /// What a dropped pipeline kept goes to the next one, due when it was, on the lane that
    /// owns each item with the new lane count.
    #[test]
    fn what_a_drained_pipeline_kept_goes_to_the_next() {
        let carried = Arc::new(Carried::default());
        let views = [("v", "t"), ("w", "t")];
        let first = Unsure::carrying(Duration::from_millis(30), 1, carried.clone(), &views);
        first.lost([&delete("v", "a", 5), &put("v", "b", 6), &put("w", "c", 7)]);
        let due = first.next_due(0).expect("due");
        drop(first);
        // View `w` is gone after the reload: its write is not taken up.
        let next = Unsure::carrying(Duration::from_secs(3600), 4, carried.clone(), &views[..1]);
        assert_eq!(next.kept(), 2);
        let (a, b) = (lane("a", 4), lane("b", 4));
        assert!(next.oldest_loss(a).is_some() && next.oldest_loss(b).is_some());
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let mut taken = next.take_due(a);
        if a != b {
            taken.extend(next.take_due(b));
        }
        assert_eq!(taken.len(), 2, "due as it was, not a new window");
        let absent_ok: Vec<bool> = taken.iter().map(|r| r.absent_ok).collect();
        assert!(absent_ok.contains(&true) && absent_ok.contains(&false));
        assert!(carried.writes.lock().unwrap().is_empty());
    }

    /// What a stopped process kept comes back through the list it saved (`control::kept`):
    /// the next process keeps the first write of each item a lane delivers (its replay's), due
    /// when it was, and holds the barriers after it; other items and removed views are not
    /// kept, and what is still a suspect at the next stop is saved again.
    #[test]
    fn what_a_stopped_process_kept_is_taken_up_when_the_replay_delivers_it() {
        let before = Arc::new(Carried::default());
        let first = Unsure::carrying(Duration::from_millis(40), 1, before.clone(), &[("v", "t")]);
        let lost = [
            delete("v", "a", 5),
            put("v", "b", 6),
            put("v", "d", 6),
            put("w", "c", 7),
        ];
        first.lost(&lost);
        let due = first.next_due(0).expect("due");
        assert!(!before.handed_over());
        drop(first);
        assert!(before.handed_over());
        let saved = before.kept();
        assert_eq!(saved.len(), 4);
        let back = serde_json::to_string(&saved).unwrap();
        let carried = Arc::new(Carried::default());
        assert!(carried.first_start() && !carried.first_start());
        carried.suspect(serde_json::from_str(&back).unwrap());
        let next = Unsure::carrying(Duration::from_secs(3600), 2, carried.clone(), &[("v", "t")]);
        assert_eq!(next.kept(), 0, "nothing kept before the replay delivers it");
        next.follow(&put("v", "x", 9));
        next.follow(&put("v", "a", 8));
        assert_eq!(next.kept(), 1);
        let lane_a = lane("a", 2);
        assert!(
            next.oldest_loss(lane_a).is_some(),
            "the barriers after it wait"
        );
        // Due when it was in the process before (the saved time is in milliseconds).
        let at = next.next_due(lane_a).expect("due");
        assert!(at <= due + Duration::from_millis(2), "{at:?} {due:?}");
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        let taken = next.take_due(lane_a);
        assert_eq!(taken.len(), 1);
        assert!(taken[0].absent_ok, "a lost write of it was a delete");
        assert_eq!(
            taken[0].op.version, 8,
            "written again with the replay's write"
        );
        next.finished(lane_a, &taken);
        // A marked removal is kept too: it is the state to write again over a late landing.
        let mut removal = delete("v", "b", 10);
        removal.mark_removal = true;
        next.follow(&removal);
        assert_eq!(next.kept(), 1);
        // `d` was not delivered yet: saved again at the next stop, with `b`. `w`'s view is gone.
        drop(next);
        let mut again: Vec<String> = carried.kept().into_iter().map(|k| k.pk).collect();
        again.sort();
        let pk = |name| ItemKey::for_test(name).pk;
        assert_eq!(again, [pk("b"), pk("d")]);
    }

    /// A time saved on a clock ahead of this host's is due no later than a window from the
    /// start: it would hold the checkpoint that long (found by a review).
    #[test]
    fn a_saved_time_far_ahead_is_due_within_a_window() {
        let carried = Arc::new(Carried::default());
        let hour_ahead = crate::util::now_millis() + 3_600_000;
        let saved = Arc::new(Carried::default());
        let first = Unsure::carrying(Duration::from_secs(1), 1, saved.clone(), &[("v", "t")]);
        first.lost([&put("v", "a", 5)]);
        drop(first);
        let mut kept = saved.kept();
        kept[0].due_ms = hour_ahead;
        carried.suspect(kept);
        let next = Unsure::carrying(Duration::from_millis(50), 1, carried, &[("v", "t")]);
        next.follow(&put("v", "a", 6));
        let due = next.next_due(0).expect("due");
        assert!(due <= Instant::now() + Duration::from_millis(50), "{due:?}");
    }

    /// An item lost again while kept stays due when it was first lost (its barriers go after
    /// that recheck) and is kept again for the window of its later loss, under that loss's
    /// number: an item that keeps losing writes does not hold its first loss for ever.
    #[test]
    fn an_item_lost_again_is_due_when_first_lost_and_kept_for_its_later_loss() {
        let unsure = Unsure::new(Duration::from_millis(40), 1);
        unsure.lost([&put("v", "a", 5)]);
        let first = unsure.next_due(0).expect("due");
        let before_again = unsure.loss_epoch(0); // a barrier between the two losses
        std::thread::sleep(Duration::from_millis(20));
        unsure.lost([&put("v", "a", 6)]);
        let after_again = unsure.loss_epoch(0); // a barrier after the second loss
        assert_eq!((before_again, after_again), (1, 2));
        assert_eq!(unsure.next_due(0), Some(first), "still due when first lost");
        std::thread::sleep(first.saturating_duration_since(Instant::now()));
        let taken = unsure.take_due(0);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].op.version, 6);
        unsure.finished(0, &taken);
        // The barrier between the losses goes; the one after the second waits for it.
        let oldest = unsure.oldest_loss(0).expect("the second loss");
        assert!(oldest >= before_again && oldest < after_again);
        let again = unsure.next_due(0).expect("kept for the second window");
        assert!(again > first);
        std::thread::sleep(again.saturating_duration_since(Instant::now()));
        let taken = unsure.take_due(0);
        assert_eq!(taken.len(), 1);
        unsure.finished(0, &taken);
        assert_eq!(unsure.oldest_loss(0), None);
    }

    /// Each barrier waits only for the losses before it: a later loss of another item, or the
    /// same item lost again while being written again, does not hold it longer.
    #[test]
    fn a_barrier_waits_only_for_the_losses_numbered_before_it() {
        let unsure = Unsure::new(Duration::from_millis(10), 1);
        unsure.lost([&delete("v", "a", 5)]);
        let barrier = unsure.loss_epoch(0); // a barrier after a's loss
        assert_eq!(barrier, 1);
        std::thread::sleep(Duration::from_millis(20));
        let taken = unsure.take_due(0);
        unsure.lost([&delete("v", "b", 6)]); // a later loss
        assert_eq!(unsure.oldest_loss(0), Some(0));
        unsure.lost_again(&taken[0]); // a's write again was lost too: still loss 0
        unsure.finished(0, &taken);
        assert_eq!(unsure.oldest_loss(0), Some(0));
        std::thread::sleep(Duration::from_millis(20));
        let again = unsure.take_due(0);
        assert_eq!(again.len(), 2);
        let (first, rest) = again.split_at(1);
        let (a, b) = if first[0].op.op.key().pk == "a" {
            (first, rest)
        } else {
            (rest, first)
        };
        unsure.finished(0, a);
        // Loss 1 (b) is outstanding, 0 is not: the barrier numbered 1 goes.
        assert_eq!(unsure.oldest_loss(0), Some(1));
        assert!(unsure.oldest_loss(0).is_none_or(|oldest| oldest >= barrier));
        unsure.finished(0, b);
        assert_eq!(unsure.oldest_loss(0), None);
    }
}
