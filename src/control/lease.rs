//! The write lease: an instance sends writes to the views, and commits write-back statements
//! in SQL, only while its ownership of the checkpoint was confirmed less than one term ago.
//!
//! Ownership is confirmed between writes: by the claim at start, by every checkpoint save and by
//! a check every second, several in flight at once when the control table is slow (see
//! `checkpoint/tracker.rs`). An instance that
//! stalls (a stopped or frozen container, a starved runtime) and
//! is taken over meanwhile would otherwise resume and send the writes it held, over the newer
//! ones of its successor, before its next check fences it; and it would never write those items
//! again (for write-back: an application's older change committed over a newer one). With the
//! lease, every send first waits while the last confirmation is older than the term. A
//! confirmation counts from when its request was sent, not from when it was answered, and any
//! confirmation was sent before the takeover: so every write an instance sends leaves before
//! the takeover plus one term. The successor waits that long (the longer of its own term and
//! the one its predecessor recorded in the checkpoint item), and a margin for requests in
//! flight, before it writes anything (`app/prepare.rs`).
//!
//! When the tracker ends (drained, failed, fenced, panicked) the lease ends with it: nothing
//! would renew it, so a send still waiting gives up instead of waiting forever; so does one,
//! while the pipeline drains, whose lease ran out a whole term ago (no answer for that long). A write given up is neither written
//! nor acknowledged: its lane stops (see `sink/lane.rs`), the checkpoint never passes it, and
//! the next start replays it.
//!
//! What a lease on the instance's own clock cannot cover: a pause that falls between the lease
//! check and the request leaving (the SDK's own work before it sends included: credentials,
//! connecting); a request held in the network longer than the margin; a paused VM whose
//! monotonic clock stands still while it is paused. Conditional single writes (the version
//! guard) are safe from all three as far as versions go: an older version never replaces a
//! newer one (a put can still bring back an item a later delete removed: its own instance
//! writes it again when it knows the outcome unknown, `sink/unsure.rs`; a fenced one does not).
//! Checked batches (`sink/checked.rs`) are not: their write is a plain BatchWriteItem.
//!
//! A file checkpoint has no lease: its owner holds a lock on the file (`files::FileOwner`) for
//! as long as it runs, so no other instance writes meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::metrics::metrics;

#[derive(Clone)]
pub struct Lease(Option<Arc<Term>>);

struct Term {
    length: Duration,
    until: watch::Sender<Until>,
    /// Whether a send waits (for one line in the log per episode).
    waiting: AtomicBool,
    /// Cancelled when the pipeline drains (see [`Lease::give_up_when`]).
    draining: OnceLock<CancellationToken>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Until {
    /// Writes may be sent until then (`None`: not before the first confirmation).
    Time(Option<Instant>),
    /// Nothing confirms ownership any more (the checkpoint tracker has ended or released the
    /// checkpoint, or this instance was fenced): nothing may be sent or recorded again.
    Ended,
}

/// How often a send that waits says it is held back (not stalled: see `metrics::waits`) and
/// looks whether the pipeline drains.
const PUSHBACK_EVERY: Duration = Duration::from_secs(1);

impl Lease {
    /// Writes are never held: a file checkpoint, or no checkpoint owner at all.
    pub fn unowned() -> Lease {
        Lease(None)
    }

    /// A lease of `length` per confirmation, not held until the first one.
    pub fn new(length: Duration) -> Lease {
        Lease(Some(Arc::new(Term {
            length,
            until: watch::Sender::new(Until::Time(None)),
            waiting: AtomicBool::new(false),
            draining: OnceLock::new(),
        })))
    }

    /// Ownership was confirmed by a request sent at `sent`: writes may be sent until one term
    /// after it (never shortened by an older confirmation answered late; never after `end`).
    pub fn confirmed(&self, sent: Instant) {
        let Some(term) = &self.0 else { return };
        let until = sent + term.length;
        term.until.send_if_modified(|current| {
            let later = match current {
                Until::Time(current) => current.is_none_or(|current| current < until),
                Until::Ended => false,
            };
            if later {
                *current = Until::Time(Some(until));
            }
            later
        });
        if term.waiting.swap(false, Ordering::Relaxed) {
            info!("ownership of the checkpoint confirmed again: writes resume");
        }
    }

    /// Nothing will confirm ownership again: sends waiting for the lease, and every later one,
    /// give up (see [`Lease::held`]).
    pub fn end(&self) {
        if let Some(term) = &self.0 {
            term.until.send_if_modified(|until| {
                let live = matches!(until, Until::Time(_));
                if live {
                    *until = Until::Ended;
                }
                live
            });
        }
    }

    /// Once `draining` is cancelled, a send whose lease ran out more than a term ago gives up
    /// (`held` is `false`) rather than wait for a confirmation that may never come: a drain
    /// must end even while the control table does not answer.
    pub fn give_up_when(&self, draining: CancellationToken) {
        if let Some(term) = &self.0 {
            let _ = term.draining.set(draining);
        }
    }

    /// Whether no confirmation came for one more term after the lease ran out: while draining,
    /// the point where a send stops waiting (a control table that answers, however slowly,
    /// keeps the lease; one that does not answer at all would hold the drain for ever).
    fn gone_quiet(until: Until, length: Duration) -> bool {
        match until {
            Until::Time(Some(until)) => Instant::now() >= until + length,
            Until::Time(None) | Until::Ended => true,
        }
    }

    fn valid(until: Until) -> bool {
        matches!(until, Until::Time(Some(until)) if Instant::now() < until)
    }

    /// Whether a write may be sent now, without waiting.
    pub fn is_held(&self) -> bool {
        self.0
            .as_ref()
            .is_none_or(|term| Self::valid(*term.until.borrow()))
    }

    /// Waits until this instance may send a write: until its ownership of the checkpoint was
    /// confirmed less than a term ago. Returns at once while it was; `false` when the lease
    /// has ended (nothing may be sent: the caller gives the write up, unacknowledged).
    pub async fn held(&self) -> bool {
        let Some(term) = &self.0 else { return true };
        if Self::valid(*term.until.borrow()) {
            return true;
        }
        let mut until = term.until.subscribe();
        metrics().lease_waits.inc();
        loop {
            let now = *until.borrow_and_update();
            if matches!(now, Until::Ended) {
                return false;
            }
            if Self::valid(now) {
                return true;
            }
            if term
                .draining
                .get()
                .is_some_and(CancellationToken::is_cancelled)
                && Self::gone_quiet(now, term.length)
            {
                return false;
            }
            if !term.waiting.swap(true, Ordering::Relaxed) {
                warn!(
                    term_ms = term.length.as_millis() as u64,
                    "ownership of the checkpoint not confirmed within the lease: writes wait for the next confirmation (or for this instance to be fenced)"
                );
            }
            // Held back by the control table, not hung: `/healthz` must not call it a stall.
            crate::metrics::note_pushback();
            // A confirmation, or a second gone (the drain and the pushback are looked at again);
            // `Ok(Err)`: the sender is gone with its lease.
            if let Ok(Err(_)) = tokio::time::timeout(PUSHBACK_EVERY, until.changed()).await {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TERM: Duration = Duration::from_secs(4);

    /// A send waiting for the lease, in a task of its own (it has run up to its wait).
    async fn waiting_send(lease: &Lease) -> tokio::task::JoinHandle<bool> {
        let lease = lease.clone();
        let waiting = tokio::spawn(async move { lease.held().await });
        tokio::task::yield_now().await;
        waiting
    }

    /// What a waiting send was answered, once woken (it must not wait any more).
    async fn answered(waiting: tokio::task::JoinHandle<bool>) -> bool {
        tokio::time::timeout(Duration::from_millis(1), waiting)
            .await
            .expect("woken")
            .expect("no panic")
    }

    /// Whether `held` returns within `within` (paused time: advanced only by the runtime).
    async fn held_within(lease: &Lease, within: Duration) -> bool {
        tokio::time::timeout(within, lease.held())
            .await
            .is_ok_and(|held| held)
    }

    #[tokio::test(start_paused = true)]
    async fn without_an_owner_writes_are_never_held() {
        let lease = Lease::unowned();
        lease.end();
        assert!(held_within(&lease, Duration::ZERO).await && lease.is_held());
    }

    /// Not held before the first confirmation; held for one term from when the confirming
    /// request was sent; then held again until the next confirmation, which lets the waiting
    /// send go at once.
    #[tokio::test(start_paused = true)]
    async fn a_send_waits_while_the_last_confirmation_is_older_than_the_term() {
        let lease = Lease::new(TERM);
        assert!(!held_within(&lease, Duration::from_secs(60)).await);
        let sent = Instant::now();
        tokio::time::advance(Duration::from_secs(1)).await; // the request's round trip
        lease.confirmed(sent);
        assert!(held_within(&lease, Duration::ZERO).await && lease.is_held());
        tokio::time::advance(Duration::from_millis(2_999)).await;
        assert!(held_within(&lease, Duration::ZERO).await);
        tokio::time::advance(Duration::from_millis(1)).await; // one term after the send
        assert!(!lease.is_held());
        assert!(!held_within(&lease, Duration::from_secs(60)).await);
        let waiting = waiting_send(&lease).await;
        assert!(!waiting.is_finished());
        lease.confirmed(Instant::now());
        assert!(
            answered(waiting).await,
            "the waiting send goes on the confirmation"
        );
    }

    /// Once the lease has ended, a waiting send and every later one give up at once, and no
    /// late confirmation brings it back.
    #[tokio::test(start_paused = true)]
    async fn an_ended_lease_lets_no_send_through_and_wakes_the_waiting_ones() {
        let lease = Lease::new(TERM);
        let waiting = waiting_send(&lease).await;
        lease.end();
        assert!(!answered(waiting).await, "the waiting send gives up");
        lease.confirmed(Instant::now());
        assert!(!lease.is_held());
        assert!(!tokio::time::timeout(Duration::ZERO, lease.held())
            .await
            .expect("no wait"));
    }

    /// While the pipeline drains, a send within the lease goes; one whose lease ran out waits
    /// for a confirmation as long as one may still come, and gives up once none came for a
    /// whole term more (one waiting since before the drain, too).
    #[tokio::test(start_paused = true)]
    async fn while_draining_a_send_gives_up_once_no_confirmation_came_for_a_term() {
        let lease = Lease::new(TERM);
        let draining = CancellationToken::new();
        lease.give_up_when(draining.clone());
        lease.confirmed(Instant::now());
        tokio::time::advance(TERM).await;
        let waiting = waiting_send(&lease).await;
        draining.cancel();
        assert!(
            tokio::time::timeout(Duration::ZERO, lease.held())
                .await
                .is_err(),
            "a send in the drain waits while a confirmation may still come"
        );
        tokio::time::advance(TERM - Duration::from_millis(1)).await;
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "gave up while a confirmation may still come"
        );
        let late = waiting_send(&lease).await;
        lease.confirmed(Instant::now());
        assert!(answered(late).await, "a slow confirmation still lets it go");
        assert!(answered(waiting).await);
        tokio::time::advance(TERM * 2).await;
        assert!(!tokio::time::timeout(Duration::from_secs(2), lease.held())
            .await
            .expect("gives up after a term without an answer"));
    }

    /// An ended lease (a release, a failure, a fence) lets nothing through, progress included.
    #[tokio::test(start_paused = true)]
    async fn an_ended_lease_lets_nothing_through() {
        let ended = Lease::new(TERM);
        ended.confirmed(Instant::now());
        ended.end();
        assert!(!ended.held().await && !ended.is_held());
    }

    /// A confirmation answered late, whose request left before the one already counted, does
    /// not shorten the lease.
    #[tokio::test(start_paused = true)]
    async fn an_older_confirmation_answered_late_does_not_shorten_the_lease() {
        let lease = Lease::new(TERM);
        let older = Instant::now();
        tokio::time::advance(Duration::from_secs(2)).await;
        lease.confirmed(Instant::now());
        lease.confirmed(older);
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(held_within(&lease, Duration::ZERO).await);
    }
}
