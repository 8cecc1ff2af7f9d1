//! Records end to end: build, verify, open; tampering; non-recipients; and
//! an author who shows different recipients different plaintexts.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use cairn_devpki::{DevPki, DevPkiSpec};
use cairn_identity::Directory;
use cairn_record::pb::{self, RecordKind, SharingLabel};
use cairn_record::record::{self, decode_envelope};
use cairn_record::seal::{self, Binding, ContentKey, Recipient};
use cairn_record::{RecordDraft, RecordError, commitment, dsse};
use proptest::prelude::*;
use prost::Message as _;

struct Net {
    pki: DevPki,
    directory: Directory,
}

fn net() -> &'static Net {
    static NET: OnceLock<Net> = OnceLock::new();
    NET.get_or_init(|| {
        let pki = DevPki::generate(&DevPkiSpec::example()).unwrap();
        let directory = pki.directory().unwrap();
        Net { pki, directory }
    })
}

use cairn_testkit::MEMBERS;

fn draft(label: SharingLabel, recipients: &[&str], content: &[u8]) -> RecordDraft {
    let mut d = RecordDraft::new(RecordKind::Incident, label, content.to_vec());
    d.recipients = recipients
        .iter()
        .map(|m| Recipient::from_directory(&net().directory, m).unwrap())
        .collect();
    d
}

fn sign_as(author: &str, d: &RecordDraft) -> pb::SignedRecord {
    let key = &net().pki.member(author).unwrap().signing_key;
    record::build(d, author, key).unwrap()
}

fn sealing_key(member: &str) -> &'static cairn_identity::SealingKey {
    &net().pki.member(member).unwrap().sealing_key
}

#[test]
fn recipients_open_and_others_cannot() {
    let d = draft(
        SharingLabel::TlpAmber,
        &["jp-aisi", "uk-aisi"],
        b"incident content",
    );
    let signed = sign_as("uk-aisi", &d);
    let v = record::verify(&signed, &net().directory).unwrap();
    assert_eq!(
        v.header.recipients,
        vec!["jp-aisi".to_owned(), "uk-aisi".to_owned()]
    );
    for m in ["jp-aisi", "uk-aisi"] {
        assert_eq!(
            v.open(m, Some(sealing_key(m))).unwrap().content.as_slice(),
            b"incident content"
        );
    }
    // eu-aio is not a recipient: neither as itself nor with someone's slot.
    assert_eq!(
        v.open("eu-aio", Some(sealing_key("eu-aio"))).unwrap_err(),
        RecordError::NotARecipient("eu-aio".into())
    );
    assert!(matches!(
        v.open("jp-aisi", Some(sealing_key("eu-aio"))).unwrap_err(),
        RecordError::Decrypt(_)
    ));
}

#[test]
fn clear_records_open_without_a_key() {
    let signed = sign_as("jp-aisi", &draft(SharingLabel::TlpClear, &[], b"public"));
    let v = record::verify(&signed, &net().directory).unwrap();
    assert_eq!(
        v.open("anyone", None).unwrap().content.as_slice(),
        b"public"
    );
}

#[test]
fn any_flipped_byte_of_envelope_or_body_is_detected() {
    let signed = sign_as(
        "uk-aisi",
        &draft(SharingLabel::TlpRed, &["eu-aio", "uk-aisi"], b"red content"),
    );
    let dir = &net().directory;
    record::verify(&signed, dir).unwrap();
    // Every bit position 0 and 7 of every byte, header and signature included.
    for i in 0..signed.envelope.len() {
        for bit in [0x01u8, 0x80] {
            let mut t = signed.clone();
            t.envelope[i] ^= bit;
            assert!(
                record::verify(&t, dir).is_err(),
                "envelope byte {i} bit {bit:#x} flip went unnoticed"
            );
        }
    }
    // Body bytes: ciphertext, nonce, wrapped keys, everything.
    for i in 0..signed.body.len() {
        let mut t = signed.clone();
        t.body[i] ^= 0x01;
        assert_eq!(
            record::verify(&t, dir).unwrap_err(),
            RecordError::BodyMismatch("its SHA-256 differs from header.body_digest")
        );
    }
}

#[test]
fn the_signer_must_be_the_author_with_a_valid_key() {
    let d = draft(SharingLabel::TlpGreen, &MEMBERS, b"x");
    // jp-aisi signs a header that names uk-aisi as author.
    let jp_key = &net().pki.member("jp-aisi").unwrap().signing_key;
    let forged = record::build(&d, "uk-aisi", jp_key).unwrap();
    assert!(matches!(
        record::verify(&forged, &net().directory).unwrap_err(),
        RecordError::SigningKey(_)
    ));

    // A record created before the key's validity window.
    let mut early = d.clone();
    early.created_at -= time::Duration::days(30);
    let signed = sign_as("uk-aisi", &early);
    assert!(matches!(
        record::verify(&signed, &net().directory).unwrap_err(),
        RecordError::SigningKey(_)
    ));

    // Wrong payload type.
    let signed = sign_as("uk-aisi", &d);
    let mut env = decode_envelope(&signed.envelope).unwrap();
    env.payload_type = "application/json".into();
    let resigned = dsse::sign(
        "application/json",
        env.payload.clone(),
        &net().pki.member("uk-aisi").unwrap().signing_key,
    );
    let t = pb::SignedRecord {
        envelope: resigned.encode_to_vec(),
        body: signed.body.clone(),
    };
    assert!(matches!(
        record::verify(&t, &net().directory).unwrap_err(),
        RecordError::PayloadType { .. }
    ));
}

#[test]
fn label_and_body_form_must_agree() {
    let dir = &net().directory;
    let uk = &net().pki.member("uk-aisi").unwrap().signing_key;
    // A TLP:CLEAR draft with recipients is refused before signing.
    let d = draft(SharingLabel::TlpClear, &["uk-aisi"], b"x");
    assert!(
        record::build(&d, "uk-aisi", uk)
            .unwrap_err()
            .to_string()
            .contains("header.recipients")
    );
    // An AMBER header over a clear body (re-signed by the author, so only the
    // form check can catch it).
    let clear = sign_as("uk-aisi", &draft(SharingLabel::TlpClear, &[], b"x"));
    let env = decode_envelope(&clear.envelope).unwrap();
    let mut h = record::decode_header(&env.payload).unwrap();
    h.label = SharingLabel::TlpAmber as i32;
    h.recipients = vec![pb::MemberId {
        id: "uk-aisi".into(),
    }];
    let t = pb::SignedRecord {
        envelope: dsse::sign(dsse::RECORD_HEADER_TYPE, h.encode_to_vec(), uk).encode_to_vec(),
        body: clear.body.clone(),
    };
    assert_eq!(
        record::verify(&t, dir).unwrap_err(),
        RecordError::BodyForm("a SHARING_LABEL_TLP_AMBER record must be sealed".into())
    );
}

/// GCM arithmetic for building a ciphertext that authenticates under two
/// keys (the "invisible salamanders" / partitioning-oracle construction of
/// Dodis et al. 2018 and Len et al. 2021): AES-GCM is not key-committing.
mod gcm {
    use aes::Aes256;
    use aes::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};

    /// Multiplication in GF(2^128) with GCM's bit order (SP 800-38D 6.3).
    pub fn mul(x: u128, y: u128) -> u128 {
        let r: u128 = 0xE1 << 120;
        let (mut z, mut v) = (0u128, y);
        for i in 0..128 {
            if (x >> (127 - i)) & 1 == 1 {
                z ^= v;
            }
            v = if v & 1 == 1 { (v >> 1) ^ r } else { v >> 1 };
        }
        z
    }

    const ONE: u128 = 1 << 127;

    pub fn pow(mut x: u128, mut e: u128) -> u128 {
        let mut acc = ONE;
        while e > 0 {
            if e & 1 == 1 {
                acc = mul(acc, x);
            }
            x = mul(x, x);
            e >>= 1;
        }
        acc
    }

    pub fn inv(x: u128) -> u128 {
        pow(x, u128::MAX - 1)
    }

    pub fn aes(key: &[u8; 32], block: [u8; 16]) -> u128 {
        let cipher = Aes256::new(GenericArray::from_slice(key));
        let mut b = GenericArray::from(block);
        cipher.encrypt_block(&mut b);
        u128::from_be_bytes(b.into())
    }

    fn blocks(bytes: &[u8]) -> Vec<u128> {
        bytes
            .chunks(16)
            .map(|c| {
                let mut b = [0u8; 16];
                b[..c.len()].copy_from_slice(c);
                u128::from_be_bytes(b)
            })
            .collect()
    }

    /// A ciphertext (with tag) of `n_blocks` full blocks that authenticates
    /// under both keys with the same nonce and associated data.
    pub fn colliding_ciphertext(
        k1: &[u8; 32],
        k2: &[u8; 32],
        nonce: &[u8; 12],
        aad: &[u8],
        n_blocks: usize,
    ) -> Vec<u8> {
        let (h1, h2) = (aes(k1, [0; 16]), aes(k2, [0; 16]));
        let mut j0 = [0u8; 16];
        j0[..12].copy_from_slice(nonce);
        j0[15] = 1;
        let (e1, e2) = (aes(k1, j0), aes(k2, j0));
        // GHASH input blocks: aad blocks, ciphertext blocks, length block.
        let a = blocks(aad);
        let mut c: Vec<u128> = (0..n_blocks as u128)
            .map(|i| i.wrapping_mul(0x9e3779b97f4a7c15))
            .collect();
        let len_block = ((aad.len() as u128 * 8) << 64) | (n_blocks as u128 * 128);
        let m = a.len() + n_blocks + 1;
        let coeff = |pos: usize| pow(h1, (m - pos) as u128) ^ pow(h2, (m - pos) as u128);
        // Solve for the last ciphertext block (position a.len() + n_blocks - 1).
        let free = a.len() + n_blocks - 1;
        let mut rhs = e1 ^ e2;
        let all: Vec<u128> = a
            .iter()
            .copied()
            .chain(c.iter().copied())
            .chain([len_block])
            .collect();
        for (pos, b) in all.iter().enumerate() {
            if pos != free {
                rhs ^= mul(*b, coeff(pos));
            }
        }
        c[n_blocks - 1] = mul(rhs, inv(coeff(free)));
        // The tag under k1 (equal to the tag under k2 by construction).
        let all: Vec<u128> = a
            .iter()
            .copied()
            .chain(c.iter().copied())
            .chain([len_block])
            .collect();
        let ghash = all.iter().fold(0u128, |x, b| mul(x ^ b, h1));
        let tag = ghash ^ e1;
        let mut out: Vec<u8> = c.iter().flat_map(|b| b.to_be_bytes()).collect();
        out.extend_from_slice(&tag.to_be_bytes());
        out
    }
}

#[test]
fn gcm_arithmetic_is_right() {
    // x * x^-1 = 1, and (H^2) = H*H.
    let x = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
    assert_eq!(gcm::mul(x, gcm::inv(x)), 1 << 127);
    assert_eq!(gcm::pow(x, 2), gcm::mul(x, x));
}

#[test]
fn an_author_who_wraps_different_keys_for_different_recipients_is_caught() {
    let uk = &net().pki.member("uk-aisi").unwrap().signing_key;
    let recipients = [
        Recipient::from_directory(&net().directory, "eu-aio").unwrap(),
        Recipient::from_directory(&net().directory, "jp-aisi").unwrap(),
    ];
    let names: Vec<String> = recipients.iter().map(|r| r.member.clone()).collect();
    let record_id = uuid::Uuid::now_v7();
    let id_text = record_id.to_string();
    let binding = Binding {
        record_id: &id_text,
        kind: RecordKind::Incident as i32,
        author: "uk-aisi",
        recipients: &names,
    };
    let (k1, k2) = (ContentKey::generate(), ContentKey::generate());
    let nonce = [9u8; 12];
    let ciphertext =
        gcm::colliding_ciphertext(k1.as_bytes(), k2.as_bytes(), &nonce, &binding.body_aad(), 4);
    // Both keys authenticate the same ciphertext, to different plaintexts.
    let p1 = seal::decrypt_content(&k1, &nonce, &binding.body_aad(), &ciphertext).unwrap();
    let p2 = seal::decrypt_content(&k2, &nonce, &binding.body_aad(), &ciphertext).unwrap();
    assert_ne!(p1.as_slice(), p2.as_slice());

    // The author commits to what eu-aio will see and wraps k1 for eu-aio, k2 for jp-aisi.
    let salt: [u8; 32] = p1[..32].try_into().unwrap();
    let sealed = pb::SealedBody {
        aead: pb::ContentAead::Aes256Gcm as i32,
        nonce: nonce.to_vec(),
        ciphertext,
        wrapped_keys: vec![
            seal::wrap_key(&k1, &recipients[0], &binding).unwrap(),
            seal::wrap_key(&k2, &recipients[1], &binding).unwrap(),
        ],
    };
    let body = pb::RecordBody {
        body: Some(pb::record_body::Body::Sealed(sealed)),
    }
    .encode_to_vec();
    let header = pb::RecordHeader {
        record_id: Some(pb::RecordId {
            uuid: id_text.clone(),
        }),
        kind: RecordKind::Incident as i32,
        schema_version: 1,
        author: Some(pb::MemberId {
            id: "uk-aisi".into(),
        }),
        signing_key_id: uk.key_id().into(),
        created_at: Some(cairn_record::header::time_to_timestamp(
            time::OffsetDateTime::now_utc(),
        )),
        label: SharingLabel::TlpAmber as i32,
        recipients: names
            .iter()
            .map(|n| pb::MemberId { id: n.clone() })
            .collect(),
        supersedes: None,
        retracts: None,
        body_commitment: commitment::commit(&salt, &p1[32..]).to_vec(),
        body_digest: record::sha256(&body).to_vec(),
        body_size: body.len() as u64,
        index: None,
        thread: None,
        acknowledges: None,
        about: None,
    };
    let signed = pb::SignedRecord {
        envelope: dsse::sign(dsse::RECORD_HEADER_TYPE, header.encode_to_vec(), uk).encode_to_vec(),
        body,
    };
    // Everything verifies: the signature is the author's own.
    let v = record::verify(&signed, &net().directory).unwrap();
    // eu-aio opens what was committed to; jp-aisi's different plaintext is caught.
    assert_eq!(
        v.open("eu-aio", Some(sealing_key("eu-aio")))
            .unwrap()
            .content
            .as_slice(),
        &p1[32..]
    );
    assert_eq!(
        v.open("jp-aisi", Some(sealing_key("jp-aisi"))).unwrap_err(),
        RecordError::CommitmentMismatch
    );
}

fn label_strategy() -> impl Strategy<Value = SharingLabel> {
    prop_oneof![
        Just(SharingLabel::TlpClear),
        Just(SharingLabel::TlpGreen),
        Just(SharingLabel::TlpAmber),
        Just(SharingLabel::TlpAmberStrict),
        Just(SharingLabel::TlpRed),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn build_verify_open_round_trips(
        content in proptest::collection::vec(any::<u8>(), 0..2048),
        label in label_strategy(),
        mask in 1u8..8,
        author in 0usize..3,
    ) {
        let recipients: Vec<&str> = if label == SharingLabel::TlpClear {
            vec![]
        } else {
            MEMBERS.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, m)| *m).collect()
        };
        let signed = sign_as(MEMBERS[author], &draft(label, &recipients, &content));
        let v = record::verify(&signed, &net().directory).unwrap();
        prop_assert_eq!(v.header.label, label);
        if label == SharingLabel::TlpClear {
            let opened = v.open("x", None).unwrap();
            prop_assert_eq!(opened.content.as_slice(), content.as_slice());
        }
        for m in MEMBERS {
            let opened = v.open(m, Some(sealing_key(m)));
            if label == SharingLabel::TlpClear || recipients.contains(&m) {
                let opened = opened.unwrap();
                prop_assert_eq!(opened.content.as_slice(), content.as_slice());
            } else {
                prop_assert!(opened.is_err());
            }
        }
    }

    #[test]
    fn decoders_and_verify_never_panic(envelope in proptest::collection::vec(any::<u8>(), 0..300), body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = record::decode_envelope(&envelope);
        let _ = record::decode_header(&envelope);
        let _ = record::decode_body(&body);
        let _ = record::verify(&pb::SignedRecord { envelope, body }, &net().directory);
    }
}
