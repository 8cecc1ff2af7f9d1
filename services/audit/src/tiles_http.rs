//! C2SP tlog-tiles over HTTPS, read-only, on the gRPC port: `GET
//! /checkpoint`, `GET /tile/<L>/<N>[.p/<W>]`, `GET /tile/entries/<N>[.p/<W>]`.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cairn_log::Log;
use cairn_tlog::tiles::{TILE_WIDTH, TilePath};

/// Adds the tile routes to `router`.
pub fn add_routes(router: Router, log: Log) -> Router {
    let for_tiles = log.clone();
    router
        .route(
            "/checkpoint",
            get(move || {
                let log = log.clone();
                async move { serve(&log, "checkpoint").await }
            }),
        )
        .route(
            "/tile/{*rest}",
            get(move |Path(rest): Path<String>| {
                let log = for_tiles.clone();
                async move { serve(&log, &format!("tile/{rest}")).await }
            }),
        )
}

async fn serve(log: &Log, path: &str) -> Response {
    let parsed = match TilePath::parse(path) {
        Ok(p) => p,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    match log.tile(&parsed).await {
        Ok(bytes) => {
            let (content_type, cache) = match parsed {
                TilePath::Checkpoint => ("text/plain; charset=utf-8", "no-store"),
                TilePath::Hashes(t) if u64::from(t.width) == TILE_WIDTH => (
                    "application/octet-stream",
                    "public, max-age=31536000, immutable",
                ),
                TilePath::Entries { width, .. } if u64::from(width) == TILE_WIDTH => (
                    "application/octet-stream",
                    "public, max-age=31536000, immutable",
                ),
                _ => ("application/octet-stream", "no-store"),
            };
            (
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CACHE_CONTROL, cache),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) if e.is_not_found() => (StatusCode::NOT_FOUND, e.to_string()).into_response(),
        Err(e) => {
            tracing::error!(error = %e, path, "tile read failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "tile read failed").into_response()
        }
    }
}
