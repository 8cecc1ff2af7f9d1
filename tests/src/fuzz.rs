//! The entry points the fuzz targets (`fuzz/`) drive, one per parser of
//! untrusted bytes. The corpus replay test calls the same functions, so
//! every saved input runs in ordinary CI. None may panic.

use std::sync::OnceLock;

use cairn_identity::{Directory, SealingKey};
use cairn_record::pb;
use prost::Message as _;

struct Fixture {
    directory: Directory,
    sealing: SealingKey,
    log_key: cairn_tlog::note::VerifierKey,
}

/// The fixed test network the seeds were made with (a throwaway dev PKI,
/// written by `cargo run -p cairn-tests --example fuzz_seeds`), so that
/// seeded records verify and open and fuzzing reaches the deep paths.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let directory = Directory::parse(
            include_bytes!("../../fuzz/fixture/directory.toml"),
            "fuzz fixture",
        )
        .expect("fixture directory");
        let sealing = SealingKey::from_pem(
            "jp-aisi-seal-1",
            include_bytes!("../../fuzz/fixture/jp-aisi.sealing.key.pem"),
        )
        .expect("fixture key");
        let signer = cairn_tlog::note::NoteSigner::from_seed(
            "cairn.example/audit",
            cairn_tlog::note::ALG_ED25519,
            &[7; 32],
        )
        .expect("signer");
        Fixture {
            directory,
            sealing,
            log_key: signer.verifier().clone(),
        }
    })
}

/// Envelope and header decoding and structural checks.
pub fn envelope_header(data: &[u8]) {
    if let Ok(env) = cairn_record::record::decode_envelope(data)
        && let Ok(h) = cairn_record::record::decode_header(&env.payload)
    {
        let _ = cairn_record::header::check(&h);
    }
    let _ = cairn_record::record::decode_body(data);
}

/// Verifying and opening a whole record.
pub fn record_open(data: &[u8]) {
    let f = fixture();
    if let Ok(signed) = pb::SignedRecord::decode(data)
        && let Ok(v) = cairn_record::verify(&signed, &f.directory)
        && let Ok(opened) = v.open("jp-aisi", Some(&f.sealing))
    {
        let _ = v.check_content(&opened.content, time::OffsetDateTime::now_utc());
    }
}

/// Signed notes, checkpoints and verifier keys.
pub fn checkpoint_note(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = cairn_tlog::note::VerifierKey::parse(text);
    let _ = cairn_tlog::checkpoint::Checkpoint::parse_body(text);
    let _ = cairn_tlog::checkpoint::open(text, &fixture().log_key);
    if let Ok(n) = cairn_tlog::note::parse(text) {
        let _ = cairn_tlog::cosignature::verify(&n, &fixture().log_key);
    }
}

/// A C2SP tlog-witness request body: parsing never panics, and what
/// parses encodes back to a body that parses to the same request.
pub fn witness_request(data: &[u8]) {
    use cairn_tlog::witness_wire::{AddCheckpoint, parse_size_body};
    let _ = parse_size_body(data);
    if let Ok(r) = AddCheckpoint::parse(data) {
        let again = AddCheckpoint::parse(r.encode().as_bytes());
        assert_eq!(
            again.ok().as_ref(),
            Some(&r),
            "re-encoding changed the request"
        );
    }
}

/// An RFC 9942 COSE Receipt from anyone: decoding and verifying never
/// panics, and nothing made up verifies with the fixture's log key.
pub fn cose_receipt(data: &[u8]) {
    let got = cairn_tlog::cose::verify_inclusion_receipt(data, &fixture().log_key, b"leaf");
    assert!(got.is_err(), "a made-up COSE receipt verified");
}

/// A STIX object or bundle from a local tool: mapping it to an incident
/// never panics, and a TAXII query string never panics the filter parser.
pub fn stix_import(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let objects = match value.get("objects").and_then(|o| o.as_array()) {
            Some(objects) => objects.clone(),
            None => vec![value],
        };
        for obj in &objects {
            let _ = cairn_stix::incident_from_object(obj, "uk-aisi");
        }
    }
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(String, String)> = text
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.to_owned(), String::new()),
        })
        .collect();
    let _ = cairn_taxii::query::Filter::parse(&pairs);
}

/// Proof verification with arbitrary arguments.
pub fn proof_verify(data: &[u8]) {
    if data.len() < 16 {
        return;
    }
    let a = u64::from_le_bytes(data[..8].try_into().unwrap_or_default());
    let b = u64::from_le_bytes(data[8..16].try_into().unwrap_or_default());
    let rest = &data[16..];
    let hashes: Vec<&[u8]> = rest.chunks(32).collect();
    let (root, proof) = hashes
        .split_first()
        .map(|(r, p)| (*r, p))
        .unwrap_or((&[][..], &[][..]));
    let _ = cairn_tlog::proof::verify_inclusion(a, b, root, proof, root);
    let _ = cairn_tlog::proof::verify_consistency(a % 1_000_000, b % 1_000_000, proof, root, root);
}

/// The directory document.
pub fn directory(data: &[u8]) {
    let _ = Directory::parse(data, "fuzz");
}

/// Incident and evaluation-result JSON, then content validation.
pub fn content_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(i) = cairn_client::json::incident_from_json(text) {
        let _ = cairn_record::content::validate_incident(&i, time::OffsetDateTime::now_utc());
    }
    if let Ok(r) = cairn_client::json::result_from_json(text) {
        let _ = cairn_record::content::validate_evaluation(
            &r,
            "uk-aisi",
            time::OffsetDateTime::now_utc(),
        );
    }
}

/// Tile paths and entry bundles.
pub fn tiles(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cairn_tlog::tiles::TilePath::parse(text);
    }
    let _ = cairn_tlog::tiles::decode_bundle(data);
    let _ = cairn_tlog::tiles::tile_hashes(data);
}

/// Audit log leaves: what the parser accepts is exactly its own encoding.
pub fn log_leaf(data: &[u8]) {
    if let Ok(leaf) = cairn_record::leaf::check_leaf(data) {
        assert_eq!(
            leaf.encode_to_vec(),
            data,
            "an accepted leaf has one encoding"
        );
    }
}

/// Key files and certificates.
pub fn keys(data: &[u8]) {
    let _ = cairn_identity::SigningKey::from_pem("k", data);
    let _ = cairn_identity::SealingKey::from_pem("k", data);
    let _ = cairn_identity::SigningKey::from_pkcs8_der("k", data);
    let _ = cairn_identity::SealingKey::from_pkcs8_der("k", data);
    let _ = cairn_mtls::parse_certificates(data);
}

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// Every target by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("envelope_header", envelope_header),
    ("record_open", record_open),
    ("checkpoint_note", checkpoint_note),
    ("proof_verify", proof_verify),
    ("directory", directory),
    ("content_json", content_json),
    ("tiles", tiles),
    ("keys", keys),
    ("log_leaf", log_leaf),
    ("witness_request", witness_request),
    ("cose_receipt", cose_receipt),
    ("stix_import", stix_import),
];
