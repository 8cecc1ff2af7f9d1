//! The fork guard. A log started on an older copy of its store (a restored
//! backup, a copied disk) would sign a second history at sizes it has
//! already published: its witnesses hold a larger checkpoint. So appends
//! are admitted only once every configured witness has confirmed, by
//! cosigning, that this log's state extends what it holds; a witness that
//! holds a larger size stops sequencing for good (until an operator
//! restores the newest state and restarts). A log with no witnesses has no
//! one to ask and is admitted at once.

use std::time::Duration;

use tokio::sync::watch;

use crate::error::AuditError;

/// Where the log stands with its witnesses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Some witnesses have not yet confirmed this log's state.
    Checking {
        /// Their names.
        waiting_for: Vec<String>,
    },
    /// Every witness confirmed it (or there are none).
    Open,
    /// A witness has cosigned a larger checkpoint than this log holds.
    Behind {
        /// The witness.
        witness: String,
        /// The size it cosigned.
        held: u64,
        /// This log's size.
        size: u64,
    },
}

/// Admits appends by the log's [`Standing`]; shared by the handlers and
/// the witnessing task.
#[derive(Clone, Debug)]
pub struct Gate {
    tx: std::sync::Arc<watch::Sender<Standing>>,
}

impl Gate {
    /// A gate waiting for `witnesses` (open at once if there are none).
    pub fn new(witnesses: Vec<String>) -> Self {
        let standing = if witnesses.is_empty() {
            Standing::Open
        } else {
            Standing::Checking {
                waiting_for: witnesses,
            }
        };
        Self {
            tx: std::sync::Arc::new(watch::channel(standing).0),
        }
    }

    /// The current standing.
    pub fn standing(&self) -> Standing {
        self.tx.borrow().clone()
    }

    /// `witness` cosigned this log's checkpoint: it holds nothing newer.
    pub fn confirmed(&self, witness: &str) {
        self.tx.send_if_modified(|s| match s {
            Standing::Checking { waiting_for } => {
                let before = waiting_for.len();
                waiting_for.retain(|w| w != witness);
                if waiting_for.is_empty() {
                    tracing::info!("every witness confirmed the log's state: sequencing");
                    *s = Standing::Open;
                    return true;
                }
                waiting_for.len() != before
            }
            Standing::Open | Standing::Behind { .. } => false,
        });
    }

    /// `witness` holds a checkpoint of size `held`, larger than this log's
    /// `size`: sequencing stops, for good.
    pub fn behind(&self, witness: &str, held: u64, size: u64) {
        tracing::error!(
            witness,
            held,
            size,
            "this log is older than a checkpoint its witness cosigned: sequencing stopped"
        );
        self.tx.send_replace(Standing::Behind {
            witness: witness.to_owned(),
            held,
            size,
        });
    }

    /// Waits at most `wait` while witnesses are being asked; then admits
    /// an append, or says why not.
    pub async fn admit(&self, wait: Duration) -> Result<(), AuditError> {
        // Every append passes here: an open gate costs one read.
        if matches!(*self.tx.borrow(), Standing::Open) {
            return Ok(());
        }
        let mut rx = self.tx.subscribe();
        let settled = tokio::time::timeout(
            wait,
            rx.wait_for(|s| !matches!(s, Standing::Checking { .. })),
        )
        .await;
        let standing = match settled {
            Ok(Ok(s)) => s.clone(),
            _ => self.standing(),
        };
        match standing {
            Standing::Open => Ok(()),
            Standing::Checking { waiting_for } => {
                Err(AuditError::WitnessesUnconfirmed { waiting_for })
            }
            Standing::Behind {
                witness,
                held,
                size,
            } => Err(AuditError::BehindWitness {
                witness,
                held,
                size,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn opens_when_every_witness_confirmed_and_never_after_one_was_ahead() {
        assert_eq!(Gate::new(vec![]).standing(), Standing::Open);
        let g = Gate::new(vec!["w1".into(), "w2".into()]);
        assert!(matches!(
            g.admit(NOW).await,
            Err(AuditError::WitnessesUnconfirmed { waiting_for }) if waiting_for.len() == 2
        ));
        g.confirmed("w1");
        g.confirmed("w1");
        assert!(g.admit(NOW).await.is_err());
        // An append waiting for the check is admitted as soon as it ends.
        let waiting = tokio::spawn({
            let g = g.clone();
            async move { g.admit(Duration::from_secs(30)).await }
        });
        g.confirmed("w2");
        waiting.await.unwrap().unwrap();
        g.behind("w2", 90, 40);
        let err = g.admit(NOW).await.unwrap_err();
        assert!(matches!(
            err,
            AuditError::BehindWitness {
                held: 90,
                size: 40,
                ..
            }
        ));
        g.confirmed("w1");
        assert!(g.admit(NOW).await.is_err(), "behind is for good");
    }
}
