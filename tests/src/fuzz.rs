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

/// A network founded by a genesis, for the directory-change target: the
/// example dev PKI, made once per process (its keys are fresh, so seeds
/// carry documents and change contents, and the target signs them).
struct Founded {
    pki: cairn_devpki::DevPki,
    governed: cairn_record::governance::Governed,
}

fn founded() -> &'static Founded {
    static F: OnceLock<Founded> = OnceLock::new();
    F.get_or_init(|| {
        let pki =
            cairn_devpki::DevPki::generate(&cairn_devpki::DevPkiSpec::example()).expect("dev pki");
        let genesis = pki.founding_document().expect("genesis");
        let governed =
            cairn_record::governance::Governed::from_genesis(&genesis, "genesis").expect("founded");
        Founded { pki, governed }
    })
}

/// `content` as a TLP:CLEAR directory change signed by `author`.
fn change_by(f: &Founded, author: &str, content: Vec<u8>) -> pb::SignedRecord {
    let draft = cairn_testkit::draft(
        f.governed.current().directory.as_ref(),
        pb::RecordKind::DirectoryChange,
        pb::SharingLabel::TlpClear,
        &[],
        content,
        None,
    );
    let key = &f.pki.member(author).expect("example member").signing_key;
    cairn_record::build(&draft, author, key).expect("signs")
}

/// Directory changes, as the audit checks them before applying one. The
/// first byte picks what the rest is: 0, a whole signed record (from
/// anyone); 1, a change's content (`DirectoryChange`, any bytes) signed by
/// a governance member; 2, a patch of the document in force (two bytes
/// of offset, then the bytes written there); otherwise a directory
/// document (TOML) with that byte's quorum. A document is proposed against
/// the directory in force and approved by a second governance member. Whatever takes effect must keep at least
/// the quorum of governance members in the directory it makes.
pub fn directory_change(data: &[u8]) {
    let _ = directory_changed(data);
}

/// [`directory_change`]'s history afterwards (`None` for empty input), so
/// a test can see how deep an input goes.
pub fn directory_changed(data: &[u8]) -> Option<cairn_record::governance::Governed> {
    let f = founded();
    let (&mode, rest) = data.split_first()?;
    let mut g = f.governed.clone();
    match mode {
        0 => {
            if let Ok(record) = pb::SignedRecord::decode(rest) {
                let _ = g.check(&record);
            }
        }
        1 => {
            let record = change_by(f, "uk-aisi", rest.to_vec());
            if let Ok(checked) = g.check(&record) {
                g.apply(checked, 1);
            }
        }
        2 => {
            // A patch of the document in force: two bytes of offset, then
            // the bytes written over it there.
            let (Some(&hi), Some(&lo)) = (rest.first(), rest.get(1)) else {
                return Some(g);
            };
            let mut doc = g.current().document.as_bytes().to_vec();
            let at = usize::from(u16::from_be_bytes([hi, lo])).min(doc.len());
            let patch = &rest[2..];
            let end = (at + patch.len()).min(doc.len());
            doc.splice(at..end, patch.iter().copied());
            let quorum = g.current().directory.quorum().unwrap_or(1);
            propose_and_approve(f, &mut g, doc, quorum);
        }
        quorum => propose_and_approve(f, &mut g, rest.to_vec(), u32::from(quorum % 8)),
    }
    let now = &g.current().directory;
    let quorum = now.quorum().unwrap_or(0) as usize;
    let governors = now
        .members()
        .filter(|m| m.has_role(cairn_identity::Role::Governance))
        .count();
    assert!(
        governors >= quorum,
        "a change took effect with {governors} governance members under its quorum of {quorum}"
    );
    Some(g)
}

/// Proposes `document` with `quorum` against the directory in force as
/// uk-aisi, and approves it as eu-aio.
fn propose_and_approve(
    f: &Founded,
    g: &mut cairn_record::governance::Governed,
    document: Vec<u8>,
    quorum: u32,
) {
    let previous = g.current().directory.digest().to_vec();
    let proposed_digest = cairn_record::record::sha256(&document).to_vec();
    let proposal = change_by(
        f,
        "uk-aisi",
        pb::DirectoryChange {
            directory: document,
            previous_digest: previous.clone(),
            summary: "fuzz".into(),
            quorum,
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let Ok(checked) = g.check(&proposal) else {
        return;
    };
    let id = checked.record_id;
    g.apply(checked, 1);
    let approval = change_by(
        f,
        "eu-aio",
        pb::DirectoryChange {
            previous_digest: previous,
            approves: Some(pb::RecordId {
                uuid: id.to_string(),
            }),
            proposed_digest,
            ..Default::default()
        }
        .encode_to_vec(),
    );
    if let Ok(checked) = g.check(&approval) {
        g.apply(checked, 2);
    }
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
    ("directory_change", directory_change),
];
