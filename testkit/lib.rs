//! Test support shared by every crate of the workspace: waiting on a condition with a deadline.
//!
//! A test that needs something to have happened (a server listening, a batch handed off, a queue
//! drained) polls for it here instead of sleeping a fixed time: it goes on as soon as the
//! condition holds, and fails with a message naming what never happened. Deadlines are upper
//! bounds, not expectations: on a loaded 2-core machine a process can stall for seconds, and a
//! generous deadline costs nothing when the condition comes early. Behaviour that does not depend
//! on real time is tested on the core's `Clock` port (`lull_core::memory::ManualClock`) instead.

pub mod fake_api;
pub mod listen_calls;

use std::fmt::Display;
use std::ops::AsyncFnMut;
use std::time::{Duration, Instant};

/// The deadline for something that normally takes well under a second (a hand-off, a server
/// start, a message reaching a queue): long enough for a loaded machine, short enough that a
/// test that will never pass says so within a minute.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The first pause between polls; it doubles up to [`MAX_PAUSE`], so a quick condition is seen
/// quickly and a slow one (spawning `lull inspect`, asking moto for a queue's depth) is not
/// polled in a busy loop.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_millis(200);

/// Polls `cond` until it holds (true) or `within` has passed (false). The condition is checked
/// once more after the deadline, so a condition that holds at the deadline counts.
///
/// `cond` is an async closure, so it can ask a server or a queue as well as read shared state.
/// When it borrows, the compiler cannot prove the wait `Send`: wait on the test's own task (run
/// concurrent work with `join_all`), not inside `tokio::spawn`.
pub async fn holds_within(within: Duration, mut cond: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    let mut pause = FIRST_PAUSE;
    loop {
        if cond().await {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Waits until `cond` holds; panics naming `what` when it has not within `within`.
pub async fn wait_for(what: impl Display, within: Duration, cond: impl AsyncFnMut() -> bool) {
    assert!(
        holds_within(within, cond).await,
        "timed out after {within:?} waiting for {what}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_as_soon_as_the_condition_holds() {
        let mut polls = 0;
        let held = holds_within(PATIENCE, async || {
            polls += 1;
            polls == 3
        })
        .await;
        assert!(held);
        assert_eq!(polls, 3);
    }

    #[tokio::test]
    async fn gives_up_after_the_deadline_and_a_last_check() {
        let start = Instant::now();
        let within = Duration::from_millis(30);
        let mut polls = 0;
        let held = holds_within(within, async || {
            polls += 1;
            false
        })
        .await;
        assert!(!held);
        assert!(start.elapsed() >= within);
        assert!(polls >= 2, "checked at once and again at the deadline");
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for the impossible")]
    async fn wait_for_names_what_never_happened() {
        wait_for("the impossible", Duration::from_millis(20), async || false).await;
    }
}
