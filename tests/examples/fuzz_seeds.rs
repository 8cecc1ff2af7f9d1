//! Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/:
//! valid inputs for each parser, so fuzzing starts from the real formats.
//!
//! cargo run -p cairn-tests --example fuzz_seeds

use cairn_devpki::{DevPki, DevPkiSpec};
use cairn_record::pb::{RecordKind, SharingLabel};
use cairn_record::{Recipient, RecordDraft};
use prost::Message as _;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(name), bytes).expect("seed");
}

fn main() {
    let pki = DevPki::generate(&DevPkiSpec::example()).expect("pki");
    let directory = pki.directory().expect("directory");
    // The fixture the fuzz entry points load: this throwaway network.
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fixture");
    std::fs::create_dir_all(&fixture).expect("fixture dir");
    std::fs::write(fixture.join("directory.toml"), pki.directory.to_toml()).expect("fixture");
    std::fs::write(
        fixture.join("jp-aisi.sealing.key.pem"),
        pki.member("jp-aisi")
            .expect("jp")
            .sealing_key_pem
            .as_bytes(),
    )
    .expect("fixture");
    let uk = pki.member("uk-aisi").expect("uk");
    let inc = cairn_tests::incident("seed");
    for (label, recipients) in [
        (SharingLabel::TlpClear, vec![]),
        (SharingLabel::TlpAmber, vec!["jp-aisi", "uk-aisi"]),
    ] {
        let mut d = RecordDraft::new(RecordKind::Incident, label, inc.encode_to_vec());
        d.recipients = recipients
            .iter()
            .map(|m| Recipient::from_directory(&directory, m).expect("r"))
            .collect();
        d.index = Some(cairn_record::content::incident_index(&inc));
        let signed = cairn_record::build(&d, "uk-aisi", &uk.signing_key).expect("build");
        let name = format!("{label:?}");
        write("envelope_header", &name, &signed.envelope);
        write("record_open", &name, &signed.encode_to_vec());
    }
    let signer = cairn_tlog::note::NoteSigner::from_seed(
        "cairn.example/audit",
        cairn_tlog::note::ALG_ED25519,
        &[7; 32],
    )
    .expect("signer");
    let cp = cairn_tlog::Checkpoint {
        origin: "cairn.example/audit".into(),
        size: 5,
        root: [3; 32],
        extensions: vec![],
    }
    .sign(&signer)
    .expect("sign");
    write("checkpoint_note", "checkpoint", cp.as_bytes());
    write(
        "checkpoint_note",
        "vkey",
        signer.verifier().to_string().as_bytes(),
    );
    let mut proof = Vec::new();
    proof.extend_from_slice(&3u64.to_le_bytes());
    proof.extend_from_slice(&8u64.to_le_bytes());
    proof.extend_from_slice(&[1u8; 32 * 4]);
    write("proof_verify", "inclusion", &proof);
    write("directory", "example", pki.directory.to_toml().as_bytes());
    write(
        "content_json",
        "incident",
        include_bytes!("../../examples/incident.json"),
    );
    write(
        "content_json",
        "result",
        include_bytes!("../../examples/result.json"),
    );
    write("tiles", "path", b"tile/0/x001/x234/067.p/17");
    write(
        "tiles",
        "bundle",
        &cairn_tlog::tiles::encode_bundle([&b"abc"[..], b"defg"]).expect("bundle"),
    );
    write(
        "log_leaf",
        "clear",
        &cairn_testkit::log_leaf("intake", "seed"),
    );
    write("keys", "signing", uk.signing_key_pem.as_bytes());
    write("keys", "sealing", uk.sealing_key_pem.as_bytes());
    write("keys", "cert", uk.tls.cert_pem.as_bytes());
    println!("seeds written");
}
