//! The foundation working together: a development PKI written to disk and
//! loaded back, a signed and sealed record carried over a real mutual-TLS
//! connection, checked against the connection's identity and the directory,
//! stored durably, read back after a reopen and opened only by recipients.
#![allow(clippy::unwrap_used)]

use cairn_devpki::{self as devpki, DevPki, DevPkiSpec, MemberFiles};
use cairn_identity::{Directory, DirectoryHandle};
use cairn_mtls::{self as tls, TlsIncoming};
use cairn_record::pb::{self, RecordKind, SharingLabel};
use cairn_record::{Recipient, RecordDraft, RecordError};
use cairn_store::{EmbeddedStore, EmbeddedStoreConfig, Store as _, StoreError, WriteBatch};
use prost::Message as _;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt as _;

const RECORDS: &str = "records";

/// Receives one length-prefixed `SignedRecord` per connection and answers
/// with one line: `stored`, `duplicate`, or `refused: <reason>`.
async fn receiver(
    listener: TcpListener,
    directory: DirectoryHandle,
    store: EmbeddedStore,
    pki_dir: std::path::PathBuf,
    connections: usize,
) {
    let config = tls::server_config(
        &devpki::service_tls_identity(&pki_dir, "intake").unwrap(),
        directory.clone(),
    )
    .unwrap();
    let mut incoming = TlsIncoming::new(listener, config, directory.clone());
    for _ in 0..connections {
        let mut conn = incoming.next().await.unwrap().unwrap();
        let peer = conn.peer().identity.clone();
        let len = conn.read_u32().await.unwrap() as usize;
        let mut buf = vec![0u8; len];
        conn.read_exact(&mut buf).await.unwrap();
        let answer = async {
            let signed = pb::SignedRecord::decode(buf.as_slice()).map_err(|e| e.to_string())?;
            let verified =
                cairn_record::verify(&signed, &directory.current()).map_err(|e| e.to_string())?;
            if peer.member().map(|m| m.as_str()) != Some(verified.header.author.as_str()) {
                return Err(format!(
                    "record signed by {} arrived on {peer}'s connection",
                    verified.header.author
                ));
            }
            let mut batch = WriteBatch::new();
            let key = verified.record_id_text().into_bytes();
            batch
                .expect_absent(RECORDS, key.clone())
                .put(RECORDS, key, buf.clone());
            match store.commit(batch).await {
                Ok(()) => Ok("stored".to_owned()),
                Err(StoreError::Conflict { .. }) => Ok("duplicate".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        }
        .await;
        let line = answer.unwrap_or_else(|e| format!("refused: {e}"));
        conn.write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        conn.shutdown().await.unwrap();
    }
}

async fn send(
    addr: std::net::SocketAddr,
    directory: &DirectoryHandle,
    files: &MemberFiles,
    signed: &pb::SignedRecord,
) -> String {
    let config =
        tls::client_config(&files.tls_identity().unwrap(), directory.clone(), "intake").unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let bytes = signed.encode_to_vec();
    stream.write_u32(bytes.len() as u32).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_record_travels_over_mtls_and_is_stored_durably() {
    let tmp = tempfile::tempdir().unwrap();
    let pki_dir = tmp.path().join("pki");
    DevPki::generate(&DevPkiSpec::example())
        .unwrap()
        .write_to(&pki_dir)
        .unwrap();
    let directory = Directory::load(&pki_dir.join(devpki::layout::DIRECTORY)).unwrap();
    let handle = DirectoryHandle::new(directory.clone());
    let store_dir = tmp.path().join("store");
    let store = EmbeddedStore::open(EmbeddedStoreConfig::new(&store_dir)).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(receiver(
        listener,
        handle.clone(),
        store.clone(),
        pki_dir.clone(),
        3,
    ));

    let uk = MemberFiles::new(&pki_dir, "uk-aisi");
    let jp = MemberFiles::new(&pki_dir, "jp-aisi");
    let mut draft = RecordDraft::new(
        RecordKind::Incident,
        SharingLabel::TlpAmber,
        b"model exfiltration attempt".to_vec(),
    );
    draft.recipients = ["jp-aisi", "uk-aisi"]
        .iter()
        .map(|m| Recipient::from_directory(&directory, m).unwrap())
        .collect();
    let signed = cairn_record::build(&draft, "uk-aisi", &uk.signing_key().unwrap()).unwrap();

    assert_eq!(send(addr, &handle, &uk, &signed).await, "stored");
    assert_eq!(send(addr, &handle, &uk, &signed).await, "duplicate");
    // jp-aisi replays uk-aisi's record on its own connection.
    let replay = send(addr, &handle, &jp, &signed).await;
    assert!(
        replay.starts_with("refused: record signed by uk-aisi arrived on member jp-aisi"),
        "{replay}"
    );
    server.await.unwrap();
    drop(store);

    // Reopen: the record is there, still verifies, and opens for recipients only.
    let store = EmbeddedStore::open(EmbeddedStoreConfig::new(&store_dir)).unwrap();
    let stored = store.scan(RECORDS, b"", None, 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    let back = pb::SignedRecord::decode(stored[0].1.as_slice()).unwrap();
    assert_eq!(back, signed);
    let verified = cairn_record::verify(&back, &directory).unwrap();
    let opened = verified
        .open("jp-aisi", Some(&jp.sealing_key().unwrap()))
        .unwrap();
    assert_eq!(opened.content.as_slice(), b"model exfiltration attempt");
    let eu = MemberFiles::new(&pki_dir, "eu-aio");
    assert_eq!(
        verified
            .open("eu-aio", Some(&eu.sealing_key().unwrap()))
            .unwrap_err(),
        RecordError::NotARecipient("eu-aio".into())
    );
}
