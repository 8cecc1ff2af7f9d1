//! DSSE (secure-systems-lab/dsse v1.0.0): the pre-authentication encoding
//! and Ed25519 signatures over it.

use cairn_identity::{SigningKey, VerifyingKey};

use crate::pb;

/// The DSSE payload type of a cairn record header.
pub const RECORD_HEADER_TYPE: &str = "application/vnd.cairn.record-header.v1+protobuf";

/// The DSSE payload type of an erasure order.
pub const ERASURE_ORDER_TYPE: &str = "application/vnd.cairn.erasure-order.v1+protobuf";

/// `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`,
/// lengths as ASCII decimal.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let t = payload_type.len().to_string();
    let b = payload.len().to_string();
    let mut out = Vec::with_capacity(10 + t.len() + payload_type.len() + b.len() + payload.len());
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(t.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(b.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Signs `payload` into a one-signature envelope.
pub fn sign(payload_type: &str, payload: Vec<u8>, key: &SigningKey) -> pb::Envelope {
    let sig = key.sign(&pae(payload_type, &payload));
    pb::Envelope {
        payload,
        payload_type: payload_type.to_owned(),
        signatures: vec![pb::Signature {
            keyid: key.key_id().to_owned(),
            sig: sig.to_vec(),
        }],
    }
}

/// Verifies one signature of an envelope with `key`.
pub fn verify(envelope: &pb::Envelope, signature: &pb::Signature, key: &VerifyingKey) -> bool {
    key.verify(
        &pae(&envelope.payload_type, &envelope.payload),
        &signature.sig,
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PAE example of the DSSE v1.0.0 protocol specification
    /// (github.com/secure-systems-lab/dsse, protocol.md, Apache-2.0).
    #[test]
    fn pae_matches_the_dsse_specification() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn signatures_bind_type_and_payload() {
        let (key, _) = SigningKey::generate("k").unwrap();
        let env = sign("t", b"payload".to_vec(), &key);
        let vk = key.verifying_key();
        assert!(verify(&env, &env.signatures[0], &vk));
        let mut other = env.clone();
        other.payload_type = "u".into();
        assert!(!verify(&other, &env.signatures[0], &vk));
        let mut other = env.clone();
        other.payload[0] ^= 1;
        assert!(!verify(&other, &env.signatures[0], &vk));
    }
}
