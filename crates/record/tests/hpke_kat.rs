//! RFC 9180 known-answer tests for the HPKE suite cairn wraps content keys
//! with, run through the same `hpke` crate the record code uses. The vectors
//! and their sources are in `tests/vectors/hpke-base-x25519-sha256.json`.
#![allow(clippy::unwrap_used)]

use hpke::aead::{AesGcm128, AesGcm256};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable as _, Kem as _, OpModeR, Serializable as _};
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    source: String,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct Vector {
    kem_id: u16,
    kdf_id: u16,
    aead_id: u16,
    info: String,
    skRm: String,
    pkRm: String,
    pkEm: String,
    encryptions: Vec<Encryption>,
}

#[derive(Deserialize)]
struct Encryption {
    aad: String,
    ct: String,
    pt: String,
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn run<A: hpke::aead::Aead>(v: &Vector) {
    type Kem = X25519HkdfSha256;
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&h(&v.skRm)).unwrap();
    // The recipient's public key follows from its private key.
    assert_eq!(Kem::sk_to_pk(&sk).to_bytes().to_vec(), h(&v.pkRm));
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&h(&v.pkEm)).unwrap();
    let mut ctx =
        hpke::setup_receiver::<A, HkdfSha256, Kem>(&OpModeR::Base, &sk, &enc, &h(&v.info)).unwrap();
    for (seq, e) in v.encryptions.iter().enumerate() {
        let pt = ctx
            .open(&h(&e.ct), &h(&e.aad))
            .unwrap_or_else(|err| panic!("sequence {seq}: {err}"));
        assert_eq!(pt, h(&e.pt), "sequence {seq}");
    }
    // A flipped bit in the first ciphertext fails on a fresh context.
    let mut ctx =
        hpke::setup_receiver::<A, HkdfSha256, Kem>(&OpModeR::Base, &sk, &enc, &h(&v.info)).unwrap();
    let mut ct = h(&v.encryptions[0].ct);
    ct[0] ^= 1;
    assert!(ctx.open(&ct, &h(&v.encryptions[0].aad)).is_err());
}

#[test]
fn rfc9180_base_mode_x25519_hkdf_sha256() {
    let file: File =
        serde_json::from_str(include_str!("vectors/hpke-base-x25519-sha256.json")).unwrap();
    assert!(file.source.contains("RFC 9180"));
    let mut seen_aes256 = false;
    for v in &file.vectors {
        assert_eq!((v.kem_id, v.kdf_id), (0x20, 1));
        match v.aead_id {
            1 => run::<AesGcm128>(v),
            2 => {
                run::<AesGcm256>(v);
                seen_aes256 = true;
            }
            other => panic!("unexpected aead {other}"),
        }
    }
    assert!(
        seen_aes256,
        "the suite cairn uses (AES-256-GCM) must be covered"
    );
    assert_eq!(cairn_record::seal::AEAD_AES_256_GCM, 2);
    assert_eq!(cairn_record::seal::KEM_X25519_HKDF_SHA256, 0x20);
}
