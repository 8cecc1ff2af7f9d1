//! The gRPC server scaffold every cairn service (intake, evals, audit)
//! starts from, so that all three get the same transport limits and the
//! same error contract at the edge:
//!
//! - [`builder`]: a `tonic` server with the request deadline, the
//!   per-connection stream cap and the HTTP/2 and TCP keepalives;
//! - [`StatusEdgeLayer`]: DESIGN.md section 5 at the transport. tonic
//!   refuses a request larger than the service's limit with `OUT_OF_RANGE`
//!   before any handler runs; cairn promises `RESOURCE_EXHAUSTED` for size
//!   limits, so the layer rewrites that one refusal. (Malformed protobuf is
//!   handled by the codec in `cairn-proto`.)
//!
//! - [`unserved`]: the answer to a path no service on the port serves —
//!   `UNIMPLEMENTED` naming the path for a gRPC call, HTTP 404 for anything
//!   else (so that an HTTP probe of a path that does not exist fails);
//!   [`with_fallback`] installs it on a port's routes.
//!
//! This crate must not know any service, record or identity: it shapes
//! transport behaviour only.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// How long one request may take (watch streams keep streaming).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Concurrent streams one connection may open.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 256;
/// HTTP/2 pings find dead peers: sent this often…
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// …and a peer that does not answer within this is dropped.
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// TCP keepalive of accepted connections.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// A server builder with cairn's limits: at most [`REQUEST_TIMEOUT`] per
/// request, [`MAX_STREAMS_PER_CONNECTION`] streams per connection, and
/// dead or silent peers found by HTTP/2 and TCP keepalives.
pub fn builder() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .timeout(REQUEST_TIMEOUT)
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
        .tcp_keepalive(Some(TCP_KEEPALIVE))
}

/// The answer to a request for a path no service on this port serves: a
/// gRPC call gets `UNIMPLEMENTED` naming the path, any other request HTTP
/// 404 (tonic's default answers every path HTTP 200 with grpc-status 12,
/// so an HTTP probe of `/healthz` would always "pass").
pub async fn unserved(request: axum::extract::Request) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let path = request.uri().path().to_owned();
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/grpc"));
    if grpc {
        let status = tonic::Status::unimplemented(format!("{path} is not served on this port"));
        let (parts, ()) = status.into_http::<()>().into_parts();
        axum::response::Response::from_parts(parts, axum::body::Body::empty())
    } else {
        (http::StatusCode::NOT_FOUND, format!("not found: {path}\n")).into_response()
    }
}

/// `routes` with [`unserved`] answering every path they do not serve.
pub fn with_fallback(routes: tonic::service::Routes) -> tonic::service::Routes {
    tonic::service::Routes::from(routes.into_axum_router().fallback(unserved))
}

/// The gRPC code tonic answers an oversized request with.
const OUT_OF_RANGE: &str = "11";
/// The code cairn answers it with.
const RESOURCE_EXHAUSTED: &str = "8";

/// Rewrites tonic's transport-level refusal of an oversized request
/// (`OUT_OF_RANGE` in a trailers-only response, before any handler ran)
/// to `RESOURCE_EXHAUSTED`, keeping tonic's message, which names the size
/// and the limit. No cairn handler answers `OUT_OF_RANGE` (their codes come
/// from one table per API), so the code alone identifies it.
#[derive(Clone, Copy, Debug, Default)]
pub struct StatusEdgeLayer;

impl<S> tower::Layer<S> for StatusEdgeLayer {
    type Service = StatusEdge<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StatusEdge { inner }
    }
}

/// The service of [`StatusEdgeLayer`].
#[derive(Clone, Debug)]
pub struct StatusEdge<S> {
    inner: S,
}

/// Applies the rewrite to one response's headers.
fn rewrite<B>(response: &mut http::Response<B>) {
    let headers = response.headers_mut();
    if headers.get("grpc-status").map(|v| v.as_bytes()) == Some(OUT_OF_RANGE.as_bytes()) {
        headers.insert(
            "grpc-status",
            http::HeaderValue::from_static(RESOURCE_EXHAUSTED),
        );
    }
}

impl<S, B, RB> tower::Service<http::Request<B>> for StatusEdge<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            rewrite(&mut response);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: Option<&'static str>) -> http::Response<()> {
        let mut r = http::Response::new(());
        if let Some(s) = status {
            r.headers_mut()
                .insert("grpc-status", http::HeaderValue::from_static(s));
        }
        r
    }

    #[test]
    fn only_an_out_of_range_refusal_becomes_resource_exhausted() {
        let mut r = response(Some("11"));
        rewrite(&mut r);
        assert_eq!(r.headers()["grpc-status"], "8");
        for other in [Some("0"), Some("3"), Some("8"), Some("13"), None] {
            let mut r = response(other);
            rewrite(&mut r);
            assert_eq!(
                r.headers().get("grpc-status").map(|v| v.as_bytes()),
                other.map(str::as_bytes)
            );
        }
    }

    #[tokio::test]
    async fn unserved_paths_are_404_or_unimplemented_by_kind_of_request() {
        let plain = http::Request::get("/healthz")
            .body(axum::body::Body::empty())
            .unwrap_or_default();
        let r = unserved(plain).await;
        assert_eq!(r.status(), http::StatusCode::NOT_FOUND);
        let grpc = http::Request::post("/x.v1.Nope/Call")
            .header("content-type", "application/grpc")
            .body(axum::body::Body::empty())
            .unwrap_or_default();
        let r = unserved(grpc).await;
        assert_eq!(r.status(), http::StatusCode::OK);
        assert_eq!(r.headers()["grpc-status"], "12");
        let message = r.headers()["grpc-message"].to_str().unwrap_or_default();
        assert!(message.contains("Nope"), "{message}");
    }

    #[tokio::test]
    async fn the_layer_rewrites_what_the_inner_service_answers() {
        use tower::{Layer as _, Service as _};
        let inner = tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(response(Some("11")))
        });
        let mut svc = StatusEdgeLayer.layer(inner);
        let r = svc.call(http::Request::new(())).await;
        assert_eq!(
            r.map(|r| r.headers()["grpc-status"].clone()).ok(),
            Some(http::HeaderValue::from_static("8"))
        );
    }
}
