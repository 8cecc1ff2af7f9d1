//! `--mode bulk`: the bulk path (SubmitIncidents / PublishResults), one
//! stream per connection carrying that connection's share of the records
//! (record i on connection i % N, signed by its member), every answer
//! read; prints the total time for all records.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_proto::evals::v1 as evals;
use cairn_proto::intake::v1 as intake;
use cairn_record::pb;
use tokio_stream::StreamExt as _;
use tonic::transport::Channel;

use super::Service;

/// What the bulk run did.
pub(crate) struct Bulk {
    pub(crate) accepted: usize,
    pub(crate) refused: usize,
    pub(crate) first_refusal: Option<String>,
    pub(crate) elapsed: Duration,
}

async fn one_stream(
    service: Service,
    ch: Channel,
    records: Arc<Vec<pb::SignedRecord>>,
    c: usize,
    n: usize,
) -> (usize, usize, Option<String>) {
    let mine = move || {
        (c..records.len()).step_by(n).map({
            let records = records.clone();
            move |i| records[i].clone()
        })
    };
    let (mut ok, mut refused, mut first) = (0, 0, None);
    let mut note = |refusal: Option<&pb::Refusal>| match refusal {
        None => ok += 1,
        Some(r) => {
            refused += 1;
            first.get_or_insert_with(|| format!("{} {}", r.code, r.message));
        }
    };
    match service {
        Service::Intake => {
            let reqs = tokio_stream::iter(
                mine().map(|r| intake::SubmitIncidentRequest { record: Some(r) }),
            );
            let mut s = intake::incident_intake_client::IncidentIntakeClient::new(ch)
                .submit_incidents(reqs)
                .await
                .expect("bulk stream")
                .into_inner();
            while let Some(a) = s.next().await {
                match a.expect("answer").outcome {
                    Some(intake::submit_incidents_result::Outcome::Refused(r)) => note(Some(&r)),
                    _ => note(None),
                }
            }
        }
        Service::Evals => {
            let reqs =
                tokio_stream::iter(mine().map(|r| evals::PublishResultRequest { record: Some(r) }));
            let mut s = evals::evaluation_results_client::EvaluationResultsClient::new(ch)
                .publish_results(reqs)
                .await
                .expect("bulk stream")
                .into_inner();
            while let Some(a) = s.next().await {
                match a.expect("answer").outcome {
                    Some(evals::publish_results_result::Outcome::Refused(r)) => note(Some(&r)),
                    _ => note(None),
                }
            }
        }
    }
    (ok, refused, first)
}

/// Sends every record once on the bulk path.
pub(crate) async fn run(
    service: Service,
    channels: &[Channel],
    records: Arc<Vec<pb::SignedRecord>>,
) -> Bulk {
    let n = channels.len();
    let start = Instant::now();
    let tasks: Vec<_> = channels
        .iter()
        .enumerate()
        .map(|(c, ch)| tokio::spawn(one_stream(service, ch.clone(), records.clone(), c, n)))
        .collect();
    let mut b = Bulk {
        accepted: 0,
        refused: 0,
        first_refusal: None,
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (ok, refused, first) = t.await.expect("stream task");
        b.accepted += ok;
        b.refused += refused;
        if b.first_refusal.is_none() {
            b.first_refusal = first;
        }
    }
    b.elapsed = start.elapsed();
    b
}
