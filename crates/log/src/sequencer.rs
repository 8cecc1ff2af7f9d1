//! The batching sequencer task: the only writer of the log. It takes
//! whatever appends are waiting (no timer, no merge delay), up to
//! `max_batch` leaves, runs them through the stages as one batch
//! ([`crate::stages::run_batch`]) and answers each request with its
//! receipts, in order.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::engine::{Inner, Receipt};
use crate::error::LogError;

/// One caller's leaves and where to send their receipts.
pub(crate) struct Request {
    pub(crate) leaves: Vec<Vec<u8>>,
    pub(crate) reply: oneshot::Sender<Result<Vec<Receipt>, LogError>>,
}

/// The error each caller of a failed batch is told.
fn same_error(e: &LogError) -> LogError {
    match e {
        LogError::Fenced => LogError::Fenced,
        LogError::LeafSize { index, len, max } => LogError::LeafSize {
            index: *index,
            len: *len,
            max: *max,
        },
        LogError::Store(_) | LogError::TileFile { .. } => LogError::NotStored {
            detail: e.to_string(),
        },
        other => LogError::corrupt(format!("batch failed: {other}")),
    }
}

/// Takes the first waiting request and every other one waiting, up to
/// `max_batch` leaves (a single request may exceed it).
async fn next_batch(rx: &mut mpsc::Receiver<Request>, max_batch: usize) -> Option<Vec<Request>> {
    let first = rx.recv().await?;
    let mut count = first.leaves.len();
    let mut requests = vec![first];
    while count < max_batch {
        match rx.try_recv() {
            Ok(r) => {
                count += r.leaves.len();
                requests.push(r);
            }
            Err(_) => break,
        }
    }
    Some(requests)
}

/// Hands each request its share of `receipts` (one per leaf, in order).
fn answer(requests: Vec<Request>, receipts: Vec<Receipt>) {
    let mut receipts = receipts.into_iter();
    for r in requests {
        let mine: Vec<Receipt> = receipts.by_ref().take(r.leaves.len()).collect();
        let reply = if mine.len() == r.leaves.len() {
            Ok(mine)
        } else {
            Err(LogError::corrupt(format!(
                "the batch gave {} receipts for {} leaves",
                mine.len(),
                r.leaves.len()
            )))
        };
        let _ = r.reply.send(reply);
    }
}

/// Runs until every sender is gone.
pub(crate) async fn run(inner: Arc<Inner>, mut rx: mpsc::Receiver<Request>) {
    while let Some(requests) = next_batch(&mut rx, inner.config.max_batch).await {
        let leaves: Vec<&[u8]> = requests
            .iter()
            .flat_map(|r| r.leaves.iter().map(Vec::as_slice))
            .collect();
        let integrated = {
            let _batch = inner.batches.lock().await;
            crate::stages::run_batch(&inner, &leaves).await
        };
        match integrated {
            Ok(receipts) => {
                if let Some(observe) = &inner.config.on_batch {
                    (observe.0)(leaves.len());
                }
                answer(requests, receipts);
            }
            Err(e) => {
                tracing::error!(error = %e, leaves = leaves.len(), "batch not integrated");
                for r in requests {
                    let _ = r.reply.send(Err(same_error(&e)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(n: usize) -> (Request, oneshot::Receiver<Result<Vec<Receipt>, LogError>>) {
        let (reply, rx) = oneshot::channel();
        (
            Request {
                leaves: vec![vec![1]; n],
                reply,
            },
            rx,
        )
    }

    fn receipt(i: u64) -> Receipt {
        Receipt {
            leaf_index: i,
            checkpoint: Arc::from("cp"),
            inclusion_proof: vec![],
        }
    }

    #[tokio::test]
    async fn a_batch_takes_what_waits_up_to_its_limit() {
        let (tx, mut rx) = mpsc::channel(8);
        for n in [2, 2, 2] {
            tx.send(request(n).0).await.ok();
        }
        let batch = next_batch(&mut rx, 3).await.unwrap_or_default();
        assert_eq!(batch.len(), 2, "2 + 2 leaves reach the limit of 3");
        let batch = next_batch(&mut rx, 3).await.unwrap_or_default();
        assert_eq!(batch.len(), 1);
        drop(tx);
        assert!(next_batch(&mut rx, 3).await.is_none());
    }

    #[tokio::test]
    async fn receipts_go_back_in_order_and_a_short_batch_is_an_error() {
        let ((a, ra), (b, rb)) = (request(1), request(2));
        answer(vec![a, b], (0..3).map(receipt).collect());
        let a = ra.await.ok().and_then(Result::ok).unwrap_or_default();
        let b = rb.await.ok().and_then(Result::ok).unwrap_or_default();
        assert_eq!(a.iter().map(|r| r.leaf_index).collect::<Vec<_>>(), [0]);
        assert_eq!(b.iter().map(|r| r.leaf_index).collect::<Vec<_>>(), [1, 2]);

        let ((a, ra), (b, rb)) = (request(1), request(2));
        answer(vec![a, b], vec![receipt(0)]);
        assert!(matches!(ra.await, Ok(Ok(_))));
        assert!(matches!(rb.await, Ok(Err(LogError::Corrupt { .. }))));
    }
}
