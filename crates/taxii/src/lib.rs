//! A member-side TAXII 2.1 gateway (`cairn taxii serve`): it runs on a
//! member's own machine with that member's credentials, follows the
//! network's incidents and evaluation results from durable cursors,
//! opens what the member may open, and serves it as STIX 2.1 over TAXII
//! 2.1 (OASIS, 10 June 2021) to the member's local tools (MISP, OpenCTI,
//! taxii2-client) over HTTPS with HTTP basic authentication. STIX
//! incidents the tools add are validated, mapped, signed, sealed to the
//! recipients and label their markings name, and submitted; the status
//! resource says per object what was shared and what was refused and why.
//!
//! - [`Gateway`]: the running gateway (its store, its collections, its
//!   SDK client); [`Gateway::serve`] answers HTTPS on a listener and
//!   [`Gateway::follow`] keeps the store up to date;
//! - [`collections`]: one collection per record kind and TLP label, and
//!   one for the network's identities and definitions;
//! - [`store`]: the durable state (redb, owner-only files);
//! - [`http`]: the TAXII 2.1 endpoints; [`share`]: the write path;
//! - [`auth`]: the local users, with the highest label each may read.
//!
//! The records are end-to-end encrypted: only a member can turn them into
//! plaintext STIX, so this gateway must never run inside a cairn service;
//! it speaks only the v1 API through the SDK.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;

use cairn_client::Client;

pub mod auth;
pub mod collections;
mod follow;
pub mod http;
pub mod query;
pub mod share;
pub mod store;
pub mod tls;

pub use auth::Users;
pub use collections::{Collection, Collections};
pub use store::Store;
pub use tls::ServerIdentity;

/// The API root's path (`/cairn/`).
pub const API_ROOT: &str = "cairn";
/// TAXII 2.1's media type.
pub const TAXII_MEDIA_TYPE: &str = "application/taxii+json;version=2.1";
/// STIX 2.1's media type.
pub const STIX_MEDIA_TYPE: &str = "application/stix+json;version=2.1";
/// The largest request body (`max_content_length` of the API root).
pub const MAX_CONTENT_LENGTH: usize = 10 * 1024 * 1024;
/// Objects per page when the request sets no `limit`, and the most.
pub const PAGE: usize = 100;
/// The most objects one page may hold.
pub const MAX_PAGE: usize = 1000;

/// Why the gateway could not do something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaxiiError {
    /// Its database failed.
    #[error("gateway store: {detail}")]
    Store {
        /// What failed.
        detail: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Certificates, keys or the directory.
    #[error(transparent)]
    Identity(#[from] cairn_identity::Error),
    /// The TLS configuration.
    #[error("TLS: {detail}")]
    Tls {
        /// What failed.
        detail: String,
    },
    /// The users file.
    #[error("users file {}: line {line}: {detail}", path.display())]
    Users {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// The network.
    #[error(transparent)]
    Client(#[from] cairn_client::ClientError),
    /// A record could not be mapped.
    #[error(transparent)]
    Stix(#[from] cairn_stix::StixError),
}

/// A running gateway.
pub struct Gateway {
    client: Client,
    store: Store,
    collections: Collections,
    users: Users,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("member", &self.client.member())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway for `client`'s member over `store`, serving `users`;
    /// seeds the network collection with the directory's members, the
    /// TLP 2.0 marking definitions and cairn's extension definitions.
    pub fn new(client: Client, store: Store, users: Users) -> Result<Arc<Self>, TaxiiError> {
        let gw = Self {
            client,
            store,
            collections: Collections::new(),
            users,
        };
        gw.seed()?;
        Ok(Arc::new(gw))
    }

    fn seed(&self) -> Result<(), TaxiiError> {
        let mut objects = cairn_stix::vocab::marking_definitions();
        objects.extend(cairn_stix::vocab::extension_definitions());
        objects.extend(
            self.client
                .directory()
                .members()
                .map(cairn_stix::export::identity),
        );
        let network = self.collections.network().id.clone();
        self.store.add(&network, &objects, None, None)
    }

    /// The member this gateway acts as.
    pub fn member(&self) -> &str {
        self.client.member()
    }

    /// Its collections.
    pub fn collections(&self) -> &Collections {
        &self.collections
    }

    /// Its store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether the gateway has served (or mapped) record `record_id`.
    pub fn has_record(&self, record_id: uuid::Uuid) -> bool {
        self.store
            .object_id_of(record_id)
            .is_ok_and(|id| id.is_some())
    }

    /// Follows the network until the task is dropped: incidents and
    /// evaluation results, each from its durable cursor, reconnecting
    /// after a failure.
    pub async fn follow(self: Arc<Self>) {
        tokio::join!(
            follow::run(self.clone(), follow::Feed::Incidents),
            follow::run(self, follow::Feed::Results),
        );
    }

    /// Serves TAXII 2.1 over HTTPS on `listener` until the task is dropped.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        tls: Arc<rustls::ServerConfig>,
    ) {
        http::serve(self, listener, tls).await;
    }
}
