//! The identity matrix at the TLS layer: real TLS 1.3 handshakes on
//! loopback between a server using cairn's verifier and clients presenting
//! good and bad certificates.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use cairn_devpki::{DevCa, DevPki, DevPkiSpec, LeafSpec};
use cairn_identity::{Directory, DirectoryHandle, MemberId, PeerIdentity};
use cairn_mtls::{self as tls, ServiceServerVerifier, TlsIdentity, TlsIncoming};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt as _;

struct Net {
    pki: DevPki,
    directory: DirectoryHandle,
}

fn net() -> Net {
    let pki = DevPki::generate(&DevPkiSpec::example()).unwrap();
    let directory = DirectoryHandle::new(pki.directory().unwrap());
    Net { pki, directory }
}

impl Net {
    fn server_identity(&self, name: &str) -> TlsIdentity {
        self.pki.service(name).unwrap().tls.tls_identity().unwrap()
    }

    fn client(&self, identity: &TlsIdentity, service: &str) -> Arc<ClientConfig> {
        tls::client_config(identity, self.directory.clone(), service).unwrap()
    }

    fn member_identity(&self, id: &str) -> TlsIdentity {
        self.pki.member(id).unwrap().tls.tls_identity().unwrap()
    }
}

/// Runs one handshake on loopback; returns what the server concluded (the
/// peer's identity, or the refusal) and whether the client could exchange
/// application data.
async fn handshake(
    net: &Net,
    server: &str,
    client: Arc<ClientConfig>,
) -> (Result<PeerIdentity, String>, bool) {
    let mut seen = connections(net, server, client, 1, || {}).await;
    let (identity, _, ok) = seen.remove(0);
    (identity, ok)
}

/// What the server concluded of one connection (the peer, or the
/// refusal), the kind of handshake, and whether the client exchanged data.
type Seen = (
    Result<PeerIdentity, String>,
    Option<rustls::HandshakeKind>,
    bool,
);

/// `count` connections from one client config to one server config of
/// service `server`, as a long-running client and service make them;
/// `between` runs after the first.
async fn connections(
    net: &Net,
    server: &str,
    client: Arc<ClientConfig>,
    count: usize,
    between: impl FnOnce(),
) -> Vec<Seen> {
    let config = tls::server_config(&net.server_identity(server), net.directory.clone()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let trust_domain = net.directory.current().trust_domain().to_owned();
    let server_task = tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let mut seen = Vec::new();
        for _ in 0..count {
            let (tcp, _) = listener.accept().await.unwrap();
            seen.push(match acceptor.accept(tcp).await {
                Ok(mut stream) => {
                    let kind = stream.get_ref().1.handshake_kind();
                    let identity = tls::authenticated_peer(stream.get_ref().1, &trust_domain)
                        .map_err(|e| e.to_string());
                    let mut buf = [0u8; 4];
                    if stream.read_exact(&mut buf).await.is_ok() {
                        let _ = stream.write_all(b"pong").await;
                        let _ = stream.flush().await;
                    }
                    (identity, kind)
                }
                Err(e) => (Err(e.to_string()), None),
            });
        }
        seen
    });
    let connector = tokio_rustls::TlsConnector::from(client);
    let mut client_ok = Vec::new();
    let mut between = Some(between);
    for _ in 0..count {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let ok = match connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
        {
            Ok(mut stream) => {
                let mut buf = [0u8; 4];
                stream.write_all(b"ping").await.is_ok()
                    && stream.flush().await.is_ok()
                    && stream.read_exact(&mut buf).await.is_ok()
                    && &buf == b"pong"
            }
            Err(_) => false,
        };
        client_ok.push(ok);
        if let Some(f) = between.take() {
            f();
        }
    }
    let seen = server_task.await.unwrap();
    seen.into_iter()
        .zip(client_ok)
        .map(|((identity, kind), ok)| (identity, kind, ok))
        .collect()
}

fn member(id: &str) -> PeerIdentity {
    PeerIdentity::Member {
        id: MemberId::parse(id).unwrap(),
        subpath: String::new(),
    }
}

#[tokio::test]
async fn a_member_with_its_own_certificate_is_accepted() {
    let net = net();
    let client = net.client(&net.member_identity("uk-aisi"), "intake");
    let (server, client_ok) = handshake(&net, "intake", client).await;
    assert_eq!(server.unwrap(), member("uk-aisi"));
    assert!(client_ok);
}

#[tokio::test]
async fn a_service_identity_is_accepted_as_a_service() {
    let net = net();
    let client = net.client(&net.server_identity("intake"), "audit");
    let (server, client_ok) = handshake(&net, "audit", client).await;
    assert_eq!(
        server.unwrap(),
        PeerIdentity::Service {
            name: "intake".into()
        }
    );
    assert!(client_ok);
}

fn assert_refused((server, client_ok): (Result<PeerIdentity, String>, bool), why: &str) {
    let err = server.expect_err("the server must refuse");
    assert!(err.contains(why), "refusal {err:?} should mention {why:?}");
    assert!(!client_ok, "a refused client must not exchange data");
}

#[tokio::test]
async fn no_client_certificate_is_refused() {
    let net = net();
    let client = ClientConfig::builder_with_provider(tls::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServiceServerVerifier::new(
            net.directory.clone(),
            "intake",
        )))
        .with_no_client_auth();
    assert_refused(
        handshake(&net, "intake", Arc::new(client)).await,
        "peer sent no certificates",
    );
}

#[tokio::test]
async fn a_self_signed_certificate_is_refused() {
    let net = net();
    // A self-signed leaf claiming uk-aisi's identity.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(
        rcgen::string::Ia5String::try_from("spiffe://cairn.example/member/uk-aisi").unwrap(),
    )];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(&key).unwrap();
    let identity =
        TlsIdentity::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap();
    assert_refused(
        handshake(&net, "intake", net.client(&identity, "intake")).await,
        "does not chain to its CA",
    );
}

#[tokio::test]
async fn a_certificate_from_a_foreign_ca_is_refused() {
    let net = net();
    let foreign = DevCa::new("foreign").unwrap();
    let identity = foreign
        .issue(&LeafSpec::member("cairn.example", "uk-aisi"))
        .unwrap()
        .tls_identity()
        .unwrap();
    assert_refused(
        handshake(&net, "intake", net.client(&identity, "intake")).await,
        "does not chain to its CA",
    );
}

#[tokio::test]
async fn another_members_san_on_this_members_ca_is_refused() {
    let net = net();
    // uk-aisi's CA issues a certificate claiming to be jp-aisi.
    let uk_ca = &net.pki.member("uk-aisi").unwrap().ca;
    let identity = uk_ca
        .issue(&LeafSpec::member("cairn.example", "jp-aisi"))
        .unwrap()
        .tls_identity()
        .unwrap();
    assert_refused(
        handshake(&net, "intake", net.client(&identity, "intake")).await,
        "does not chain to its CA",
    );
}

#[tokio::test]
async fn a_service_san_on_a_member_ca_is_refused() {
    let net = net();
    let uk_ca = &net.pki.member("uk-aisi").unwrap().ca;
    let identity = uk_ca
        .issue(&LeafSpec::service("cairn.example", "intake"))
        .unwrap()
        .tls_identity()
        .unwrap();
    assert_refused(
        handshake(&net, "audit", net.client(&identity, "audit")).await,
        "does not chain to its CA",
    );
}

#[tokio::test]
async fn expired_and_not_yet_valid_certificates_are_refused() {
    let net = net();
    let uk_ca = &net.pki.member("uk-aisi").unwrap().ca;
    let now = OffsetDateTime::now_utc();
    let mut expired = LeafSpec::member("cairn.example", "uk-aisi");
    expired.not_before = now - Duration::days(30);
    expired.not_after = now - Duration::days(1);
    let identity = uk_ca.issue(&expired).unwrap().tls_identity().unwrap();
    assert_refused(
        handshake(&net, "intake", net.client(&identity, "intake")).await,
        "certificate expired",
    );

    let mut future = LeafSpec::member("cairn.example", "uk-aisi");
    future.not_before = now + Duration::days(1);
    future.not_after = now + Duration::days(30);
    let identity = uk_ca.issue(&future).unwrap().tls_identity().unwrap();
    assert_refused(
        handshake(&net, "intake", net.client(&identity, "intake")).await,
        "not valid",
    );
}

#[tokio::test]
async fn another_trust_domain_is_refused() {
    let net = net();
    let uk_ca = &net.pki.member("uk-aisi").unwrap().ca;
    let identity = uk_ca
        .issue(&LeafSpec::member("evil.example", "uk-aisi"))
        .unwrap()
        .tls_identity()
        .unwrap();
    assert_refused(
        handshake(&net, "intake", net.client(&identity, "intake")).await,
        "another trust domain",
    );
}

#[tokio::test]
async fn a_member_removed_from_the_directory_is_refused_after_reload() {
    let net = net();
    let identity = net.member_identity("jp-aisi");
    let (server, _) = handshake(&net, "intake", net.client(&identity, "intake")).await;
    assert_eq!(server.unwrap(), member("jp-aisi"));

    let mut doc = net.pki.directory.clone();
    doc.members.retain(|m| m.id != "jp-aisi");
    net.directory
        .replace(Directory::from_document(doc, "reloaded").unwrap())
        .unwrap();
    assert_refused(
        handshake(&net, "intake", net.client(&identity, "intake")).await,
        "not in the directory",
    );
}

#[tokio::test]
async fn the_client_refuses_the_wrong_service() {
    let net = net();
    // The client wants intake but reaches audit.
    let client = net.client(&net.member_identity("uk-aisi"), "intake");
    let (server, client_ok) = handshake(&net, "audit", client).await;
    assert!(!client_ok);
    assert!(server.is_err());
}

#[tokio::test]
async fn incoming_yields_authenticated_connections_with_peer_info() {
    let net = net();
    let config = tls::server_config(&net.server_identity("evals"), net.directory.clone()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut incoming = TlsIncoming::new(listener, config, net.directory.clone());

    // A refused client first: it never shows up in the stream.
    let foreign = DevCa::new("foreign").unwrap();
    let rogue = foreign
        .issue(&LeafSpec::member("cairn.example", "eu-aio"))
        .unwrap()
        .tls_identity()
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(net.client(&rogue, "evals"));
    let tcp = TcpStream::connect(addr).await.unwrap();
    if let Ok(mut s) = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
    {
        let mut buf = [0u8; 1];
        assert!(
            s.read_exact(&mut buf).await.is_err(),
            "the server must close a refused connection"
        );
    }

    let connector =
        tokio_rustls::TlsConnector::from(net.client(&net.member_identity("eu-aio"), "evals"));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let _client = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let conn = incoming.next().await.unwrap().unwrap();
    assert_eq!(conn.peer().identity, member("eu-aio"));
    use tonic::transport::server::Connected as _;
    assert_eq!(conn.connect_info().identity, member("eu-aio"));
}

#[tokio::test]
async fn a_client_trickling_bytes_cannot_tie_up_the_server() {
    let net = net();
    let config = tls::server_config(&net.server_identity("intake"), net.directory.clone()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut incoming = TlsIncoming::with_handshake_timeout(
        listener,
        config,
        net.directory.clone(),
        std::time::Duration::from_millis(500),
    );

    // A slow client: sends the first bytes of a TLS record, then one byte
    // at a time, never finishing its ClientHello.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    let trickle = tokio::spawn(async move {
        // Bounded: 100 bytes at most, then the server must have hung up.
        for _ in 0..100 {
            if slow.write_all(&[0x01]).await.is_err() {
                return true;
            }
            let mut buf = [0u8; 1];
            match tokio::time::timeout(std::time::Duration::from_millis(50), slow.read(&mut buf))
                .await
            {
                Ok(Ok(0)) | Ok(Err(_)) => return true, // closed by the server
                _ => {}
            }
        }
        false
    });

    // Meanwhile a normal client is served at once.
    let connector =
        tokio_rustls::TlsConnector::from(net.client(&net.member_identity("uk-aisi"), "intake"));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let _client = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let conn = tokio::time::timeout(std::time::Duration::from_secs(5), incoming.next())
        .await
        .expect("the normal client waited behind the slow one")
        .unwrap()
        .unwrap();
    assert_eq!(conn.peer().identity, member("uk-aisi"));
    assert!(
        trickle.await.unwrap(),
        "the server kept the trickling connection open"
    );
}

#[tokio::test]
async fn a_members_only_server_refuses_a_service_identity_in_the_handshake() {
    let net = net();
    let config = tls::server_config_admitting(
        &net.server_identity("intake"),
        net.directory.clone(),
        tls::Peers::MembersOnly,
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tokio_rustls::TlsAcceptor::from(config)
            .accept(tcp)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    });
    let connector =
        tokio_rustls::TlsConnector::from(net.client(&net.server_identity("evals"), "intake"));
    let tcp = TcpStream::connect(addr).await.unwrap();
    if let Ok(mut s) = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
    {
        let mut buf = [0u8; 1];
        let _ = s.read(&mut buf).await;
    }
    let err = server.await.unwrap().unwrap_err();
    assert!(err.contains("admits members only"), "{err}");
}

/// TLS 1.3 resumption would skip the client-certificate checks (rustls
/// does not verify a resumed client again): a member removed from the
/// directory, or whose certificate expired, could go on from a ticket.
/// Every connection is a full handshake, checked against the directory in
/// force at that moment.
#[tokio::test]
async fn no_connection_is_resumed_and_a_removed_member_is_refused_on_reconnecting() {
    let net = net();
    let client = net.client(&net.member_identity("uk-aisi"), "intake");
    let seen = connections(&net, "intake", client.clone(), 2, || {}).await;
    for (identity, kind, ok) in &seen {
        assert_eq!(identity.as_ref().unwrap(), &member("uk-aisi"));
        assert_eq!(
            *kind,
            Some(rustls::HandshakeKind::Full),
            "a connection was resumed"
        );
        assert!(*ok);
    }
    // Remove uk-aisi after its first connection: the second is refused.
    let handle = net.directory.clone();
    let mut doc = net.pki.directory.clone();
    doc.members.retain(|m| m.id != "uk-aisi");
    let without = Directory::from_document(doc, "without uk-aisi").unwrap();
    let seen = connections(&net, "intake", client, 2, move || {
        handle.replace(without).unwrap()
    })
    .await;
    assert!(seen[0].0.is_ok() && seen[0].2);
    assert!(
        seen[1].0.is_err(),
        "a removed member reconnected: {:?}",
        seen[1]
    );
    assert!(!seen[1].2);
}

#[tokio::test]
async fn a_client_connects_from_the_source_address_it_is_given() {
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let source = "127.0.0.3".parse().unwrap();
    let (_client, accepted) = tokio::join!(tls::connect_tcp(&target, Some(source)), async {
        listener.accept().await.unwrap().1
    });
    assert_eq!(accepted.ip(), source);

    let v6 = "::1".parse().unwrap();
    let err = tls::connect_tcp(&target, Some(v6)).await.unwrap_err();
    assert!(
        err.to_string().contains("no address of the family"),
        "{err}"
    );
}
