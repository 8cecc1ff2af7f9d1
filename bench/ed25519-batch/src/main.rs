//! Whether cairn's record services should verify Ed25519 signatures in
//! batches ([M] part 3 allows "batch signature verification from a
//! maintained crate if it measures faster than ring one by one").
//!
//! ```sh
//! cd bench/ed25519-batch
//! cargo run --release            # 4,096 signatures over 1,500-byte messages
//! ```
//!
//! It prints the CPU per signature of ring's `ED25519` verification (what
//! the services use), of ed25519-dalek's single `verify`, and of its
//! `verify_batch` at 16, 64 and 256 signatures; then it builds a
//! signature whose `R` carries a small-order (torsion) component and shows
//! that `verify_batch` accepts it, for one message in eight, while ring
//! (and OpenSSL, and dalek's single `verify`), which check
//! `[S]B = R + [k]A`, refuse it: `verify_batch` checks a random
//! combination of the signatures' equations, without the cofactor, with
//! weights drawn from a transcript of its inputs alone, and a torsion
//! point times a weight that is a multiple of 8 vanishes.
//! Only the holder of the private key can make such a signature, but a
//! service that verified in batches would accept, on its bulk path, a
//! record that its unary path and every recipient's verifier refuse.
//! Closing the gap means checking each `R` is torsion-free, which the
//! last line times.

use std::time::Instant;

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use ring::signature::{self, Ed25519KeyPair, KeyPair as _};
use sha2::{Digest as _, Sha512};

const COUNT: usize = 4096;

fn per_signature(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e6 / COUNT as f64
}

fn main() {
    let rng = ring::rand::SystemRandom::new();
    let keys: Vec<Ed25519KeyPair> = (0..4)
        .map(|_| {
            let der = Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
            Ed25519KeyPair::from_pkcs8(der.as_ref()).expect("key")
        })
        .collect();
    let mut messages = Vec::new();
    let mut signatures = Vec::new();
    let mut public = Vec::new();
    for i in 0..COUNT {
        let message = vec![i as u8; 1500];
        let key = &keys[i % keys.len()];
        signatures.push(key.sign(&message).as_ref().to_vec());
        public.push(key.public_key().as_ref().to_vec());
        messages.push(message);
    }
    let dalek_keys: Vec<VerifyingKey> = public
        .iter()
        .map(|p| VerifyingKey::from_bytes(p.as_slice().try_into().expect("32")).expect("key"))
        .collect();
    let dalek_signatures: Vec<Signature> = signatures
        .iter()
        .map(|s| Signature::from_slice(s).expect("64"))
        .collect();

    let start = Instant::now();
    for i in 0..COUNT {
        signature::UnparsedPublicKey::new(&signature::ED25519, &public[i])
            .verify(&messages[i], &signatures[i])
            .expect("valid");
    }
    println!(
        "ring, one by one:            {:5.1} µs a signature",
        per_signature(start)
    );

    let start = Instant::now();
    for i in 0..COUNT {
        dalek_keys[i]
            .verify(&messages[i], &dalek_signatures[i])
            .expect("valid");
    }
    println!(
        "ed25519-dalek, one by one:   {:5.1} µs a signature",
        per_signature(start)
    );

    for batch in [16usize, 64, 256] {
        let start = Instant::now();
        for chunk in 0..COUNT / batch {
            let range = chunk * batch..(chunk + 1) * batch;
            let m: Vec<&[u8]> = messages[range.clone()].iter().map(Vec::as_slice).collect();
            ed25519_dalek::verify_batch(&m, &dalek_signatures[range.clone()], &dalek_keys[range])
                .expect("valid");
        }
        println!(
            "ed25519-dalek, batch of {batch:3}: {:5.1} µs a signature",
            per_signature(start)
        );
    }

    disagreement();

    let start = Instant::now();
    for s in &signatures {
        let r = curve25519_dalek::edwards::CompressedEdwardsY(s[..32].try_into().expect("32"))
            .decompress()
            .expect("a point");
        assert!(r.is_torsion_free());
    }
    println!(
        "R torsion-free check alone:  {:5.1} µs a signature",
        per_signature(start)
    );
}

/// Signatures `(R + T, S)` with `T` of order 8, made with the private
/// scalar directly, over messages tried in turn until `verify_batch`
/// accepts one: its weights are derived from the inputs alone (a Merlin
/// transcript, no other randomness) and its equation is cofactorless, so
/// `z·T` vanishes whenever the weight `z` is a multiple of 8 — one
/// message in eight, found offline.
fn disagreement() {
    let secret = Scalar::from_bytes_mod_order([7; 32]);
    let a = (ED25519_BASEPOINT_POINT * secret).compress();
    let key = VerifyingKey::from_bytes(a.as_bytes()).expect("key");
    let nonce = Scalar::from_bytes_mod_order([9; 32]);
    let r = (ED25519_BASEPOINT_POINT * nonce + EIGHT_TORSION[1]).compress();
    for attempt in 0u32..256 {
        let message = format!("a record header, attempt {attempt}");
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(r.as_bytes())
                .chain_update(a.as_bytes())
                .chain_update(message.as_bytes()),
        );
        let s = nonce + k * secret;
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(r.as_bytes());
        bytes[32..].copy_from_slice(s.as_bytes());
        let sig = Signature::from_bytes(&bytes);
        if ed25519_dalek::verify_batch(&[message.as_bytes()], &[sig], &[key]).is_err() {
            continue;
        }
        let ring = signature::UnparsedPublicKey::new(&signature::ED25519, a.as_bytes())
            .verify(message.as_bytes(), &bytes)
            .is_ok();
        let single = key.verify(message.as_bytes(), &sig).is_ok();
        let say = |ok| if ok { "accepts" } else { "refuses" };
        println!(
            "a signature whose R has a torsion component, message {} tried: verify_batch accepts, ring {}, dalek verify {}",
            attempt + 1,
            say(ring),
            say(single),
        );
        return;
    }
    println!("no message of 256 made verify_batch accept the torsioned signature");
}
