//! The committed frontier: the last sequence number whose commit has
//! returned, every smaller one committed too (numbers are taken in their
//! commits: see [`crate::group`]). Readers never look past it, watchers wake
//! when it moves, and the outbox delivers nothing beyond it.
//!
//! On the embedded store a commit is visible before its sync returns, so "visible" and
//! "durable" differ for a moment; [`CommittedFrontier::wait_past`] is how a
//! reader waits until what it saw is durable.

use std::time::Duration;

use tokio::sync::watch;

/// The last sequence number committed and durable.
#[derive(Debug)]
pub struct CommittedFrontier {
    tx: watch::Sender<u64>,
}

impl CommittedFrontier {
    /// Starts at `last`.
    pub fn new(last: u64) -> Self {
        let (tx, _) = watch::channel(last);
        Self { tx }
    }

    /// Where it stands.
    pub fn current(&self) -> u64 {
        *self.tx.borrow()
    }

    /// Moves it up to `n` (never down); wakes watchers if it moved.
    pub fn advance(&self, n: u64) {
        self.tx.send_if_modified(|f| {
            let moved = n > *f;
            *f = (*f).max(n);
            moved
        });
    }

    /// Follows it (watchers, the outbox).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// Waits until it reaches `visible`, at most `bound`; `false` if it did
    /// not.
    pub async fn wait_past(&self, visible: u64, bound: Duration) -> bool {
        let mut rx = self.tx.subscribe();
        matches!(
            tokio::time::timeout(bound, rx.wait_for(|f| *f >= visible)).await,
            Ok(Ok(_))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_only_moves_up() {
        let f = CommittedFrontier::new(5);
        f.advance(3);
        assert_eq!(f.current(), 5);
        f.advance(9);
        assert_eq!(f.current(), 9);
    }

    #[tokio::test]
    async fn watchers_wake_only_when_it_moves() {
        let f = CommittedFrontier::new(1);
        let mut rx = f.subscribe();
        rx.borrow_and_update();
        f.advance(1);
        assert!(!rx.has_changed().unwrap_or(true));
        f.advance(2);
        assert!(rx.has_changed().unwrap_or(false));
    }

    #[tokio::test]
    async fn waiting_past_returns_once_reached_or_gives_up() {
        let f = std::sync::Arc::new(CommittedFrontier::new(1));
        assert!(f.wait_past(1, Duration::ZERO).await);
        assert!(!f.wait_past(2, Duration::from_millis(10)).await);
        let mover = f.clone();
        let waiter = tokio::spawn(async move { mover.wait_past(4, Duration::from_secs(30)).await });
        tokio::task::yield_now().await;
        f.advance(4);
        assert!(waiter.await.unwrap_or(false));
    }
}
