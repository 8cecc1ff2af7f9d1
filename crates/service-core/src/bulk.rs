//! The bulk path: many records on one client stream, each submitted
//! exactly as the unary call submits it ([`RecordCore::submit`]: the same
//! checks, limits, durability and idempotency), answered in the order sent
//! with its outcome or its exact refusal. At most [`BULK_IN_FLIGHT`]
//! records are in work per stream; the next request is read only when one
//! finishes and its answer is taken by the transport, so a client that
//! sends faster than the service stores is held back by HTTP/2 flow
//! control, never buffered without bound.

use std::sync::Arc;

use cairn_identity::PeerIdentity;
use cairn_proto::common::v1 as pb;
use futures_util::StreamExt as _;
use tokio_stream::Stream;
use tonic::Status;

use crate::{RecordCore, ServiceError, SubmitKind, SubmitOutcome};

/// Records in work at once on one bulk stream.
pub const BULK_IN_FLIGHT: usize = 256;

/// The refusal a failed submission is answered with.
pub fn refusal(status: &Status) -> pb::Refusal {
    pb::Refusal {
        code: status.code() as i32,
        message: status.message().to_owned(),
    }
}

/// Submits each request's record (`record_of`) as `kind` and answers with
/// `answer(index, outcome)`, in order. A transport error on the inbound
/// stream ends the answer stream with that error.
pub fn submit_stream<Req, Ans>(
    core: Arc<RecordCore>,
    peer: PeerIdentity,
    kind: SubmitKind,
    inbound: tonic::Streaming<Req>,
    record_of: fn(Req) -> Option<pb::SignedRecord>,
    answer: fn(u64, Result<SubmitOutcome, Status>) -> Ans,
) -> impl Stream<Item = Result<Ans, Status>> + Send + 'static
where
    Req: Send + 'static,
    Ans: Send + 'static,
{
    inbound
        .enumerate()
        .map(move |(i, item)| {
            let (core, peer) = (core.clone(), peer.clone());
            async move {
                let req = item?;
                let outcome = match record_of(req) {
                    Some(record) => core.submit(&peer, record, kind).await.map_err(Status::from),
                    None => Err(Status::from(ServiceError::Missing { field: "record" })),
                };
                Ok(answer(i as u64, outcome))
            }
        })
        .buffered(BULK_IN_FLIGHT)
}
