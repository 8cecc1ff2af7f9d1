//! Prometheus metrics: one registry per running service, the gRPC request
//! metrics every service has (a tower layer), and a plain-HTTP `/metrics`
//! endpoint for the scraper.
//!
//! Metrics carry counts, sizes and durations only — never record ids,
//! member names or anything from a record — so the endpoint needs no mTLS.
//! Label values come from a fixed set (gRPC method paths the service
//! implements, status codes), never from raw client input: a request for
//! an unknown method is counted under `method="unknown"`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus::{Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::TelemetryError;

/// Buckets for request latency (seconds): 100 µs to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Buckets for batch sizes (items): 1 to 4096.
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// Work run before each scrape (reading a size from the store, say).
pub type ScrapeHook = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The metrics of one service instance.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    hooks: Arc<Mutex<Vec<ScrapeHook>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn prom(e: prometheus::Error) -> TelemetryError {
    TelemetryError::Metrics(e.to_string())
}

impl Metrics {
    /// A fresh registry whose every series carries `service="<service>"`.
    pub fn new(service: &str) -> Result<Self, TelemetryError> {
        let labels = std::iter::once(("service".to_owned(), service.to_owned())).collect();
        let registry = Registry::new_custom(Some("cairn".into()), Some(labels)).map_err(prom)?;
        let requests = IntCounterVec::new(
            Opts::new("grpc_requests_total", "gRPC requests by method and status"),
            &["method", "code"],
        )
        .map_err(prom)?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "grpc_request_duration_seconds",
                "Time to the response headers (a unary call's whole handling; a stream's opening), by method and status",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "code"],
        )
        .map_err(prom)?;
        registry
            .register(Box::new(requests.clone()))
            .map_err(prom)?;
        registry.register(Box::new(latency.clone())).map_err(prom)?;
        Ok(Self {
            registry,
            requests,
            latency,
            hooks: Arc::default(),
        })
    }

    /// Runs `hook` before every scrape, to refresh gauges that are read
    /// rather than pushed (sizes, frontiers).
    pub fn on_scrape<F, Fut>(&self, hook: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let hook: ScrapeHook = Arc::new(move || Box::pin(hook()));
        if let Ok(mut h) = self.hooks.lock() {
            h.push(hook);
        }
    }

    /// The `store_bytes` gauge: `store`'s size on disk, read at scrape time
    /// (absent where the backend cannot say, e.g. a shared database). Every
    /// service registers it through here, once.
    pub fn store_size_gauge(
        &self,
        store: Arc<dyn cairn_store::Store>,
    ) -> Result<(), TelemetryError> {
        self.gauge_on_scrape("store_bytes", "Store size on disk", move || {
            let store = store.clone();
            async move {
                store
                    .size_on_disk()
                    .await
                    .ok()
                    .flatten()
                    .and_then(|n| i64::try_from(n).ok())
            }
        })
    }

    /// A gauge `name` read by `read` at every scrape (left as it was when
    /// `read` gives `None`).
    pub fn gauge_on_scrape<F, Fut>(
        &self,
        name: &str,
        help: &str,
        read: F,
    ) -> Result<(), TelemetryError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<i64>> + Send + 'static,
    {
        let gauge = prometheus::IntGauge::new(name, help).map_err(prom)?;
        self.register(&gauge)?;
        let read = Arc::new(read);
        self.on_scrape(move || {
            let (gauge, read) = (gauge.clone(), read.clone());
            async move {
                if let Some(v) = read().await {
                    gauge.set(v);
                }
            }
        });
        Ok(())
    }

    /// Runs the scrape hooks, then renders: what `GET /metrics` answers.
    pub async fn scrape(&self) -> String {
        let hooks = self.hooks.lock().map(|h| h.clone()).unwrap_or_default();
        for hook in hooks {
            hook().await;
        }
        self.render()
    }

    /// Wraps a metric constructor's error.
    pub fn error(e: prometheus::Error) -> TelemetryError {
        prom(e)
    }

    /// The `directory_version` gauge every service exports, registered: the
    /// directory version in force (0 the genesis, then one more for each
    /// change that took effect).
    pub fn directory_version(&self) -> Result<prometheus::IntGauge, TelemetryError> {
        let gauge = prometheus::IntGauge::new(
            "directory_version",
            "The directory version in force (0: the genesis; +1 for each change that took effect)",
        )
        .map_err(prom)?;
        self.register(&gauge)?;
        Ok(gauge)
    }

    /// Registers a metric of the service's own (a gauge, a histogram).
    pub fn register<C: prometheus::core::Collector + Clone + 'static>(
        &self,
        collector: &C,
    ) -> Result<(), TelemetryError> {
        self.registry
            .register(Box::new(collector.clone()))
            .map_err(prom)
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed families.
        if let Err(e) = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The tower layer that counts and times every gRPC request.
    pub fn grpc_layer(&self) -> GrpcMetricsLayer {
        GrpcMetricsLayer {
            metrics: self.clone(),
        }
    }

    fn observe(&self, method: &str, code: &str, started: Instant) {
        self.requests.with_label_values(&[method, code]).inc();
        self.latency
            .with_label_values(&[method, code])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Serves the operations endpoint on `addr` over plain HTTP (HTTP/1.1
    /// and HTTP/2 without TLS): `GET /metrics`, plus `extra` (the gRPC
    /// health service, for orchestrators' probes). Runs until the returned
    /// [`OpsEndpoint`] is dropped. `None`: not served (the metrics are
    /// still kept).
    pub async fn serve(
        &self,
        addr: Option<SocketAddr>,
        extra: axum::Router,
    ) -> Result<Option<OpsEndpoint>, TelemetryError> {
        let Some(addr) = addr else {
            return Ok(None);
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| TelemetryError::Metrics(format!("binding {addr}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| TelemetryError::Metrics(e.to_string()))?;
        let me = self.clone();
        let app = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let me = me.clone();
                    async move {
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )],
                            me.scrape().await,
                        )
                    }
                }),
            )
            .merge(extra)
            .fallback(cairn_server::unserved);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
            {
                tracing::warn!(error = %e, "operations endpoint stopped");
            }
        });
        tracing::info!(addr = %bound, "metrics on http://{bound}/metrics");
        Ok(Some(OpsEndpoint {
            addr: bound,
            stop: Some(stop),
            task,
        }))
    }
}

/// A running operations endpoint (`/metrics`, health); stops when dropped.
#[derive(Debug)]
pub struct OpsEndpoint {
    /// The bound address.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl OpsEndpoint {
    /// Stops serving and waits until the listener is closed.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for OpsEndpoint {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Counts and times gRPC requests: see [`Metrics::grpc_layer`].
#[derive(Clone, Debug)]
pub struct GrpcMetricsLayer {
    metrics: Metrics,
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`GrpcMetricsLayer`].
#[derive(Clone, Debug)]
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: Metrics,
}

/// The gRPC status of a response at its headers: the `grpc-status` of a
/// trailers-only (error) response, otherwise OK (a stream that fails later
/// reports its status in trailers, after this point).
fn status_code<B>(response: &http::Response<B>) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    if !response.status().is_success() {
        return "HTTP_ERROR";
    }
    match response.headers().get("grpc-status") {
        None => "OK",
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .and_then(|i| NAMES.get(i).copied())
            .unwrap_or("UNKNOWN"),
    }
}

/// The `method` label, from a fixed set: a gRPC method the service
/// implements (`/pkg.Service/Method`; an unimplemented one answers
/// UNIMPLEMENTED and is `unknown`), or one of the plain-HTTP routes by its
/// route, never by its path (every tile path would otherwise be a series of
/// its own), or `unknown`.
fn method_label<'a>(path: &'a str, code: &str) -> &'a str {
    if code == "UNIMPLEMENTED" {
        return "unknown";
    }
    let grpc_method = path
        .strip_prefix('/')
        .and_then(|p| p.split_once('/'))
        .is_some_and(|(service, method)| {
            service.contains('.') && !method.is_empty() && !method.contains('/')
        });
    if grpc_method && code != "HTTP_ERROR" {
        return path;
    }
    match path {
        "/checkpoint" => "/checkpoint",
        "/metrics" => "/metrics",
        p if p.starts_with("/tile/entries/") => "/tile/entries",
        p if p.starts_with("/tile/") => "/tile",
        _ => "unknown",
    }
}

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcMetricsService<S>
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
        let started = Instant::now();
        let path = request.uri().path().to_owned();
        let metrics = self.metrics.clone();
        let fut = self.inner.call(request);
        Box::pin(async move {
            let result = fut.await;
            let code = match &result {
                Ok(r) => status_code(r),
                Err(_) => "TRANSPORT_ERROR",
            };
            metrics.observe(method_label(&path, code), code, started);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_carry_the_service_and_render_as_text() {
        let m = Metrics::new("intake").unwrap();
        m.observe("/cairn.intake.v1.Intake/Submit", "OK", Instant::now());
        m.observe(
            "/cairn.intake.v1.Intake/Submit",
            "INVALID_ARGUMENT",
            Instant::now(),
        );
        let g = prometheus::IntGauge::new("log_size", "leaves").unwrap();
        m.register(&g).unwrap();
        g.set(42);
        let text = m.render();
        assert!(
            text.contains(r#"cairn_grpc_requests_total{code="OK",method="/cairn.intake.v1.Intake/Submit",service="intake"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"code="INVALID_ARGUMENT""#), "{text}");
        assert!(
            text.contains(r#"cairn_log_size{service="intake"} 42"#),
            "{text}"
        );
        assert!(
            text.contains("cairn_grpc_request_duration_seconds_bucket"),
            "{text}"
        );
        // A second registry in the same process does not collide.
        Metrics::new("intake").unwrap();
    }

    #[tokio::test]
    async fn scrapes_run_the_hooks_and_are_served_over_http() {
        let m = Metrics::new("audit").unwrap();
        let g = prometheus::IntGauge::new("log_size", "leaves").unwrap();
        m.register(&g).unwrap();
        let (g2, n) = (g.clone(), Arc::new(std::sync::atomic::AtomicI64::new(7)));
        let n2 = n.clone();
        m.on_scrape(move || {
            let (g, n) = (g2.clone(), n2.clone());
            async move { g.set(n.load(std::sync::atomic::Ordering::SeqCst)) }
        });
        let ops = m
            .serve(Some("127.0.0.1:0".parse().unwrap()), axum::Router::new())
            .await
            .unwrap()
            .unwrap();
        assert!(m.serve(None, axum::Router::new()).await.unwrap().is_none());
        let addr = ops.addr;
        let get = || async {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let first = get().await;
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");
        assert!(
            first.contains(r#"cairn_log_size{service="audit"} 7"#),
            "{first}"
        );
        n.store(9, std::sync::atomic::Ordering::SeqCst);
        assert!(get().await.contains(r#"cairn_log_size{service="audit"} 9"#));
        ops.stop().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[test]
    fn status_is_read_from_trailers_only_responses() {
        let ok = http::Response::new(());
        assert_eq!(status_code(&ok), "OK");
        let mut err = http::Response::new(());
        err.headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(status_code(&err), "NOT_FOUND");
        let mut odd = http::Response::new(());
        odd.headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("99"));
        assert_eq!(status_code(&odd), "UNKNOWN");
        let mut not_found = http::Response::new(());
        *not_found.status_mut() = http::StatusCode::NOT_FOUND;
        assert_eq!(status_code(&not_found), "HTTP_ERROR");
        assert_eq!(method_label("/x.Y/Z", "OK"), "/x.Y/Z");
        assert_eq!(method_label("/x.Y/Z", "NOT_FOUND"), "/x.Y/Z");
        assert_eq!(
            method_label("/made.Up/Anything", "UNIMPLEMENTED"),
            "unknown"
        );
        assert_eq!(method_label("/favicon.ico", "HTTP_ERROR"), "unknown");
    }

    #[test]
    fn tile_paths_share_one_label_whatever_their_number() {
        let labels: std::collections::BTreeSet<&str> = (0..300)
            .map(|i| format!("/tile/0/x{:03}/{}", i / 256, i % 256))
            .chain((0..50).map(|i| format!("/tile/entries/{i:03}.p/7")))
            .map(|p| method_label(Box::leak(p.into_boxed_str()), "OK"))
            .collect();
        assert_eq!(labels, ["/tile", "/tile/entries"].into_iter().collect());
        assert_eq!(method_label("/checkpoint", "OK"), "/checkpoint");
        assert_eq!(method_label("/tile/0/000", "HTTP_ERROR"), "/tile");
        assert_eq!(method_label("/a/b/c", "OK"), "unknown");
        assert_eq!(method_label("/nodot/Method", "OK"), "unknown");
    }
}
