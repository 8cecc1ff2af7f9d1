//! C2SP tlog-witness over HTTPS on the gRPC port (witness mode only):
//! `POST /add-checkpoint` with the body and answers
//! <https://c2sp.org/tlog-witness> defines, so stock log clients can ask
//! this witness for cosignatures and stock witnesses are interchangeable
//! with it. The checks are the gRPC witness's own ([`Witness`]).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use cairn_log::witness::{Witness, WitnessError};
use cairn_tlog::witness_wire::{AddCheckpoint, SIZE_MEDIA_TYPE};

/// The largest request body accepted: 63 proof lines and a checkpoint
/// with many signatures fit in a fraction of it.
pub const MAX_BODY: usize = 64 * 1024;

/// Adds `POST /add-checkpoint` to `router`.
pub fn add_routes(router: Router, witness: Arc<Witness>) -> Router {
    router.route(
        "/add-checkpoint",
        post(move |body: Bytes| {
            let witness = witness.clone();
            async move { add_checkpoint(&witness, &body).await }
        })
        .layer(DefaultBodyLimit::max(MAX_BODY)),
    )
}

async fn add_checkpoint(witness: &Witness, body: &[u8]) -> Response {
    let request = match AddCheckpoint::parse(body) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let proof: Vec<Vec<u8>> = request.proof.iter().map(|h| h.to_vec()).collect();
    match witness
        .add_checkpoint(request.old_size, &proof, &request.checkpoint)
        .await
    {
        Ok(line) => text(StatusCode::OK, format!("{line}\n")),
        Err(WitnessError::OldSizeMismatch { held, .. }) => (
            StatusCode::CONFLICT,
            [(header::CONTENT_TYPE, SIZE_MEDIA_TYPE)],
            format!("{held}\n"),
        )
            .into_response(),
        Err(e) => {
            let status = status_of(&e);
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(error = %e, "witness failed");
            }
            text(status, e.to_string())
        }
    }
}

/// The HTTP status c2sp.org/tlog-witness names for each refusal.
pub fn status_of(e: &WitnessError) -> StatusCode {
    match e {
        WitnessError::UnknownLog(_) => StatusCode::NOT_FOUND,
        WitnessError::BadCheckpoint(_) => StatusCode::FORBIDDEN,
        WitnessError::OldSizeAboveCheckpoint { .. } => StatusCode::BAD_REQUEST,
        WitnessError::OldSizeMismatch { .. } => StatusCode::CONFLICT,
        WitnessError::NotEmptyTree | WitnessError::Fork(_) | WitnessError::BadProof(_) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        WitnessError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}
