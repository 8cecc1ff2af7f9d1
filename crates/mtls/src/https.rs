//! One HTTP/1.1 request over TLS 1.3, for the plain-HTTPS protocols cairn
//! speaks as a client (C2SP tlog-witness, C2SP tlog-tiles): a fresh
//! connection per request, a deadline, and a bound on the answer's size.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri, header};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;

/// An HTTPS server: where to connect and how to name it.
#[derive(Clone)]
pub struct HttpsTarget {
    /// The URL it was made from, for messages.
    pub url: String,
    authority: String,
    host: String,
    prefix: String,
    name: Option<ServerName<'static>>,
    connector: tokio_rustls::TlsConnector,
    source: Option<std::net::IpAddr>,
}

impl std::fmt::Debug for HttpsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsTarget")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {detail}")]
pub struct HttpsError {
    /// The server's URL.
    pub url: String,
    /// What failed (URL, connect, TLS, HTTP, deadline, size).
    pub detail: String,
}

impl HttpsTarget {
    /// A target for `url` (`https://host[:port][/prefix]`) with `config`
    /// (its ALPN is set to `http/1.1`). With `check_name`, the server's
    /// certificate must name the URL's host (Web PKI); without, the
    /// config's verifier identifies the server by other means (cairn's
    /// directory) and the host only locates it.
    pub fn new(url: &str, config: &ClientConfig, check_name: bool) -> Result<Self, HttpsError> {
        let bad = |detail: String| HttpsError {
            url: url.to_owned(),
            detail,
        };
        let uri: Uri = url.parse().map_err(|e| bad(format!("not a URL: {e}")))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("the URL must be https://".into()));
        }
        let host = uri
            .host()
            .ok_or_else(|| bad("the URL has no host".into()))?;
        let port = uri.port_u16().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = if check_name {
            Some(
                ServerName::try_from(bare.to_owned())
                    .map_err(|e| bad(format!("host {host:?}: {e}")))?,
            )
        } else {
            None
        };
        let mut config = config.clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            url: url.to_owned(),
            authority: format!("{host}:{port}"),
            host: uri.authority().map_or(host, |a| a.as_str()).to_owned(),
            prefix: uri.path().trim_end_matches('/').to_owned(),
            name,
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            source: None,
        })
    }

    /// Connects from the local address `source` (see
    /// [`crate::channel_from`]).
    pub fn with_source(mut self, source: Option<std::net::IpAddr>) -> Self {
        self.source = source;
        self
    }

    fn error(&self, detail: impl std::fmt::Display) -> HttpsError {
        HttpsError {
            url: self.url.clone(),
            detail: detail.to_string(),
        }
    }

    /// `GET <prefix>/<path>`, or `POST` with `body`; the status and at most
    /// `max` bytes of answer, within `deadline`.
    pub async fn request(
        &self,
        path: &str,
        body: Option<String>,
        max: usize,
        deadline: Duration,
    ) -> Result<(StatusCode, Bytes), HttpsError> {
        tokio::time::timeout(deadline, self.send(path, body, max))
            .await
            .unwrap_or_else(|_| Err(self.error(format!("no answer within {deadline:?}"))))
    }

    async fn send(
        &self,
        path: &str,
        body: Option<String>,
        max: usize,
    ) -> Result<(StatusCode, Bytes), HttpsError> {
        let connect = |e: std::io::Error| self.error(format!("connect: {e}"));
        let tcp = crate::connect_tcp(&self.authority, self.source)
            .await
            .map_err(connect)?;
        tcp.set_nodelay(true).map_err(connect)?;
        let name = match &self.name {
            Some(n) => n.clone(),
            None => ServerName::IpAddress(tcp.peer_addr().map_err(connect)?.ip().into()),
        };
        let stream = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(|e| self.error(format!("TLS: {e}")))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| self.error(format!("HTTP: {e}")))?;
        let connection = tokio::spawn(connection);
        let builder = match body {
            Some(_) => Request::post(format!("{}/{path}", self.prefix))
                .header(header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            None => Request::get(format!("{}/{path}", self.prefix)),
        }
        .header(header::HOST, self.host.as_str());
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| self.error(format!("HTTP: {e}")))?;
        let answer = async {
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = Limited::new(response.into_body(), max)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
        }
        .await
        .map_err(|e| self.error(format!("HTTP: {e}")));
        connection.abort();
        answer
    }
}
