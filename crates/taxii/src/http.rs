//! The TAXII 2.1 endpoints over HTTPS/1.1: discovery (`/taxii2/`), the
//! API root (`/cairn/`), collections, objects (get with `added_after`,
//! `limit` and `next` paging and the X-TAXII-Date-Added headers; add),
//! one object, its versions, manifests and status. Every request needs a
//! local user (HTTP basic authentication, 401 otherwise); every answer
//! and every error is `application/taxii+json;version=2.1`, errors as
//! TAXII error messages with the status section 3.6 names: 400 bad
//! parameters or body, 403 a collection the user may not read or write,
//! 404 nothing there, 406 an Accept without the TAXII media type, 413 a
//! body over `max_content_length`, 415 a body that is not TAXII JSON.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::auth::User;
use crate::collections::Collection;
use crate::query::{Filter, version_of};
use crate::store::{Entry, micros};
use crate::{API_ROOT, Gateway, MAX_CONTENT_LENGTH, STIX_MEDIA_TYPE, TAXII_MEDIA_TYPE};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Gw = State<Arc<Gateway>>;
type Pairs = Query<Vec<(String, String)>>;

/// Accepts connections on `listener` until the task is dropped.
pub async fn serve(
    gw: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let app = router(gw);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}

/// The routes (public for in-process tests).
pub fn router(gw: Arc<Gateway>) -> Router {
    let root = format!("/{API_ROOT}");
    Router::new()
        .route("/taxii2/", get(discovery))
        .route(&format!("{root}/"), get(api_root))
        .route(&format!("{root}/collections/"), get(collections))
        .route(&format!("{root}/collections/{{c}}/"), get(collection))
        .route(
            &format!("{root}/collections/{{c}}/objects/"),
            get(objects).post(add_objects),
        )
        .route(
            &format!("{root}/collections/{{c}}/objects/{{o}}/"),
            get(object),
        )
        .route(
            &format!("{root}/collections/{{c}}/objects/{{o}}/versions/"),
            get(versions),
        )
        .route(
            &format!("{root}/collections/{{c}}/manifest/"),
            get(manifest),
        )
        .route(&format!("{root}/status/{{s}}/"), get(status))
        .route(&format!("{root}/status/{{s}}"), get(status))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "Not found", "no TAXII endpoint here") })
        .layer(DefaultBodyLimit::max(MAX_CONTENT_LENGTH))
        .with_state(gw)
}

/// A refused request: answered as a TAXII error message (section 3.6.1).
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    title: &'static str,
    description: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({
            "title": self.title,
            "description": self.description,
            "http_status": self.status.as_u16().to_string(),
        });
        let mut r = taxii(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"cairn TAXII\""),
            );
        }
        r
    }
}

fn error(status: StatusCode, title: &'static str, description: impl Into<String>) -> Refusal {
    Refusal {
        status,
        title,
        description: description.into(),
    }
}

type Answer = Result<Response, Refusal>;

fn taxii(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, TAXII_MEDIA_TYPE)],
        body.to_string(),
    )
        .into_response()
}

/// The authenticated user, after the Accept check; or the refusal.
fn user<'a>(gw: &'a Gateway, headers: &HeaderMap) -> Result<&'a User, Refusal> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(user) = gw.users.authenticate(auth) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "HTTP basic authentication with a user of this gateway is required",
        ));
    };
    if !accepts(headers) {
        return Err(error(
            StatusCode::NOT_ACCEPTABLE,
            "Not acceptable",
            format!("this server answers {TAXII_MEDIA_TYPE} only"),
        ));
    }
    Ok(user)
}

/// Whether the Accept header admits TAXII 2.1 JSON.
fn accepts(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let version = parts.filter_map(|p| p.strip_prefix("version=")).next_back();
        match media.as_str() {
            "*/*" | "application/*" => true,
            "application/taxii+json" => version.is_none_or(|v| v == "2.1"),
            _ => false,
        }
    })
}

/// The collection named in the path that `user` may read.
fn readable<'a>(gw: &'a Gateway, id: &str, user: &User) -> Result<&'a Collection, Refusal> {
    let c = gw.collections.find(id).ok_or_else(|| not_found(id))?;
    if !c.can_read(user) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("user {} may not read the {} collection", user.name, c.alias),
        ));
    }
    Ok(c)
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("https://{host}/{API_ROOT}/")
}

async fn discovery(State(gw): Gw, headers: HeaderMap) -> Answer {
    user(&gw, &headers)?;
    let root = base_url(&headers);
    Ok(taxii(
        StatusCode::OK,
        &json!({
            "title": format!("cairn TAXII gateway of {}", gw.member()),
            "description": "The cairn records this member may open, as STIX 2.1; incidents added here are signed, sealed and shared through cairn.",
            "default": root,
            "api_roots": [root],
        }),
    ))
}

async fn api_root(State(gw): Gw, headers: HeaderMap) -> Answer {
    user(&gw, &headers)?;
    Ok(taxii(
        StatusCode::OK,
        &json!({
            "title": format!("cairn ({})", gw.member()),
            "versions": [TAXII_MEDIA_TYPE],
            "max_content_length": MAX_CONTENT_LENGTH,
        }),
    ))
}

async fn collections(State(gw): Gw, headers: HeaderMap) -> Answer {
    let user = user(&gw, &headers)?;
    let all: Vec<Value> = gw
        .collections
        .all()
        .iter()
        .map(|c| c.resource(user))
        .collect();
    Ok(taxii(StatusCode::OK, &json!({ "collections": all })))
}

async fn collection(State(gw): Gw, Path(c): Path<String>, headers: HeaderMap) -> Answer {
    let user = user(&gw, &headers)?;
    let col = gw.collections.find(&c).ok_or_else(|| not_found(&c))?;
    Ok(taxii(StatusCode::OK, &col.resource(user)))
}

fn not_found(c: &str) -> Refusal {
    error(
        StatusCode::NOT_FOUND,
        "Collection not found",
        format!("no collection {c:?}"),
    )
}

/// The selected entries of a collection, with the paging answer.
fn page(
    gw: &Gateway,
    c: &Collection,
    filter: &Filter,
) -> Result<(Vec<Entry>, Option<String>), Refusal> {
    let keep = |e: &Entry| filter.keeps(&gw.store, e);
    let (entries, more) = gw
        .store
        .scan(&c.id, filter.next, filter.limit, &keep)
        .map_err(|e| {
            tracing::error!(error = %e, "reading the gateway store failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Store failure",
                e.to_string(),
            )
        })?;
    let next = more
        .then(|| entries.last().map(|e| e.seq.to_string()))
        .flatten();
    Ok((entries, next))
}

fn paged(entries: &[Entry], next: Option<String>, key: &str, items: Vec<Value>) -> Response {
    let mut body = json!({ "more": next.is_some() });
    if let Some(n) = next {
        body["next"] = json!(n);
    }
    if !items.is_empty() {
        body[key] = Value::Array(items);
    }
    let mut r = taxii(StatusCode::OK, &body);
    if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
        for (name, e) in [
            ("x-taxii-date-added-first", first),
            ("x-taxii-date-added-last", last),
        ] {
            if let Ok(v) = HeaderValue::from_str(&micros(e.date_added)) {
                r.headers_mut().insert(name, v);
            }
        }
    }
    r
}

/// The common start of the read endpoints: user, collection, filter.
fn read_request<'a>(
    gw: &'a Gateway,
    headers: &HeaderMap,
    c: &str,
    pairs: &[(String, String)],
) -> Result<(&'a Collection, Filter), Refusal> {
    let user = user(gw, headers)?;
    let col = readable(gw, c, user)?;
    let filter =
        Filter::parse(pairs).map_err(|e| error(StatusCode::BAD_REQUEST, "Bad filter", e))?;
    Ok((col, filter))
}

async fn objects(State(gw): Gw, Path(c): Path<String>, headers: HeaderMap, q: Pairs) -> Answer {
    let (col, filter) = read_request(&gw, &headers, &c, &q)?;
    let (entries, next) = page(&gw, col, &filter)?;
    let items = entries.iter().map(|e| e.object.clone()).collect();
    Ok(paged(&entries, next, "objects", items))
}

/// The entries of one object in a collection (all its versions with
/// `all_versions`), refused when there are none.
fn one_object(
    gw: &Gateway,
    headers: &HeaderMap,
    c: &str,
    o: &str,
    q: &[(String, String)],
    all_versions: bool,
) -> Result<(Vec<Entry>, Option<String>), Refusal> {
    let (col, mut filter) = read_request(gw, headers, c, q)?;
    filter.ids = vec![o.to_owned()];
    if all_versions {
        filter.versions = vec!["all".into()];
    }
    let (entries, next) = page(gw, col, &filter)?;
    if entries.is_empty() && filter.next == 0 {
        return Err(object_not_found(o));
    }
    Ok((entries, next))
}

async fn object(
    State(gw): Gw,
    Path((c, o)): Path<(String, String)>,
    headers: HeaderMap,
    q: Pairs,
) -> Answer {
    let (entries, next) = one_object(&gw, &headers, &c, &o, &q, false)?;
    let items = entries.iter().map(|e| e.object.clone()).collect();
    Ok(paged(&entries, next, "objects", items))
}

fn object_not_found(o: &str) -> Refusal {
    error(
        StatusCode::NOT_FOUND,
        "Object not found",
        format!("no object {o:?} in this collection matches"),
    )
}

async fn versions(
    State(gw): Gw,
    Path((c, o)): Path<(String, String)>,
    headers: HeaderMap,
    q: Pairs,
) -> Answer {
    let (entries, next) = one_object(&gw, &headers, &c, &o, &q, true)?;
    let items = entries
        .iter()
        .map(|e| json!(version_of(&e.object)))
        .collect();
    Ok(paged(&entries, next, "versions", items))
}

async fn manifest(State(gw): Gw, Path(c): Path<String>, headers: HeaderMap, q: Pairs) -> Answer {
    let (col, filter) = read_request(&gw, &headers, &c, &q)?;
    let (entries, next) = page(&gw, col, &filter)?;
    let items = entries
        .iter()
        .map(|e| {
            json!({
                "id": e.object["id"],
                "date_added": micros(e.date_added),
                "version": version_of(&e.object),
                "media_type": STIX_MEDIA_TYPE,
            })
        })
        .collect();
    Ok(paged(&entries, next, "objects", items))
}

async fn add_objects(
    State(gw): Gw,
    Path(c): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Answer {
    let user = user(&gw, &headers)?;
    let col = readable(&gw, &c, user)?;
    if !col.can_write(user) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("objects cannot be added to the {} collection", col.alias),
        ));
    }
    let body = body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            error(
                status,
                "Request too large",
                format!("the body is over max_content_length ({MAX_CONTENT_LENGTH} bytes)"),
            )
        } else {
            error(status, "Bad body", e.body_text())
        }
    })?;
    let objects = envelope(&headers, &body)?;
    let requested = time::OffsetDateTime::now_utc();
    let outcomes = crate::share::add_objects(&gw, col, &objects).await;
    let status = status_resource(&outcomes, requested);
    let id = status["id"].as_str().unwrap_or_default().to_owned();
    gw.store.put_status(&id, &status).map_err(store_failure)?;
    Ok(taxii(StatusCode::ACCEPTED, &status))
}

fn store_failure(e: crate::TaxiiError) -> Refusal {
    tracing::error!(error = %e, "the gateway store failed");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Store failure",
        e.to_string(),
    )
}

/// The objects of an add-objects body, or the refusal (415, 400).
fn envelope(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Value>, Refusal> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .replace(' ', "")
        .to_ascii_lowercase();
    if ct != TAXII_MEDIA_TYPE {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            format!("add objects with Content-Type {TAXII_MEDIA_TYPE}, not {ct:?}"),
        ));
    }
    let bad = |d: String| error(StatusCode::BAD_REQUEST, "Bad envelope", d);
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("the body is not JSON: {e}")))?;
    match value.get("objects") {
        Some(Value::Array(objects)) if !objects.is_empty() => Ok(objects.clone()),
        Some(Value::Array(_)) => Err(bad("the envelope's objects list is empty".into())),
        _ => Err(bad(
            "the body is not a TAXII envelope: no objects list".into()
        )),
    }
}

/// A status resource (section 4.3.1) for the outcomes: complete, with
/// every success and failure and its message.
fn status_resource(outcomes: &[crate::share::Outcome], requested: time::OffsetDateTime) -> Value {
    let item = |o: &crate::share::Outcome, message: &str| json!({ "id": o.id, "version": o.version, "message": message });
    let successes: Vec<Value> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().ok().map(|m| item(o, m)))
        .collect();
    let failures: Vec<Value> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err().map(|m| item(o, m)))
        .collect();
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "status": "complete",
        "request_timestamp": micros(requested),
        "total_count": outcomes.len(),
        "success_count": successes.len(),
        "successes": successes,
        "failure_count": failures.len(),
        "failures": failures,
        "pending_count": 0,
        "pendings": [],
    })
}

async fn status(State(gw): Gw, Path(s): Path<String>, headers: HeaderMap) -> Answer {
    user(&gw, &headers)?;
    match gw.store.status(&s).map_err(store_failure)? {
        Some(v) => Ok(taxii(StatusCode::OK, &v)),
        None => Err(error(
            StatusCode::NOT_FOUND,
            "Status not found",
            format!("no status {s:?}"),
        )),
    }
}
