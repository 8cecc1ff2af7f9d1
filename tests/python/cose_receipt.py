"""Checks cairn's receipts with libraries cairn did not write.

- The JSON receipt validates against proto/cairn/common/v1/receipt.schema.json
  with `jsonschema` (Draft 2020-12).
- The RFC 9942 COSE Receipt decodes with `pycose`: COSE_Sign1, EdDSA, the
  RFC9162_SHA256 verifiable data structure (vds 395 = 1) and one inclusion
  proof (vdp 396, -1). The root is recomputed here from the JSON receipt's
  leaf and the COSE proof (RFC 9162 section 2.1.3.2, with hashlib), must be
  the root in the receipt's checkpoint, and, as the detached payload, must
  carry a signature that pycose verifies with the log's Ed25519 key.
- Tampered signatures and roots are refused.

Usage: cose_receipt.py --schema S --log-key K (--pair JSON COSE)...
"""

import argparse
import base64
import hashlib
import json
import sys

import cbor2
import jsonschema
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import CoseMessage

VDS, VDP, RFC9162_SHA256, INCLUSION = 395, 396, 1, -1


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(index: int, size: int, leaf: bytes, path: list) -> bytes:
    """RFC 9162 2.1.3.2."""
    if index >= size:
        raise ValueError("leaf index not below tree size")
    fn, sn, r = index, size - 1, leaf_hash(leaf)
    for p in path:
        if sn == 0:
            raise ValueError("proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("proof too short")
    return r


def log_public_key(vkey: str) -> bytes:
    """A C2SP signed-note verifier key: <name>+<hex id>+<base64(0x01||key)>."""
    _name, _id, material = vkey.split("+", 2)
    raw = base64.b64decode(material)
    if raw[0] != 0x01 or len(raw) != 33:
        raise ValueError("not an Ed25519 verifier key")
    return raw[1:]


def header(hdr: dict, label: int):
    for k, v in hdr.items():
        if k == label or getattr(k, "identifier", None) == label:
            return v
    raise KeyError(label)


def check(schema: dict, key: OKPKey, receipt_path: str, cose_path: str) -> None:
    receipt = json.load(open(receipt_path))
    jsonschema.Draft202012Validator(schema).validate(receipt)
    print(f"ok schema: {receipt_path} has every field (leafIndex {receipt['leafIndex']})")

    raw = open(cose_path, "rb").read()
    msg = CoseMessage.decode(raw)
    assert type(msg).__name__ == "Sign1Message", type(msg)
    alg = header(msg.phdr, 1)
    assert getattr(alg, "fullname", alg) in ("EDDSA", -8), alg
    assert header(msg.phdr, VDS) == RFC9162_SHA256
    proofs = header(msg.uhdr, VDP)[INCLUSION]
    assert len(proofs) == 1, proofs
    size, index, path = cbor2.loads(proofs[0])
    assert index == int(receipt["leafIndex"]), (index, receipt["leafIndex"])
    leaf = base64.b64decode(receipt["leaf"])
    root = root_from_inclusion(index, size, leaf, path)
    lines = receipt["checkpoint"].split("\n")
    assert int(lines[1]) == size, (lines[1], size)
    assert base64.b64decode(lines[2]) == root, "the proof leads to another root"
    assert msg.payload is None, "the payload must be detached"
    msg.key = key
    msg.payload = root
    assert msg.verify_signature(), "the signature does not verify"
    print(f"ok cose: leaf {index} of {size}, {len(path)} path hashes, EdDSA verified by pycose")

    # Refusals: another root, a changed signature.
    wrong = CoseMessage.decode(raw)
    wrong.key, wrong.payload = key, hashlib.sha256(b"another root").digest()
    assert not wrong.verify_signature(), "verified over another root"
    changed = bytearray(raw)
    changed[-1] ^= 1
    bad = CoseMessage.decode(bytes(changed))
    bad.key, bad.payload = key, root
    assert not bad.verify_signature(), "verified a changed signature"
    print("ok cose: another root and a changed signature are refused")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schema", required=True)
    ap.add_argument("--log-key", required=True)
    ap.add_argument("--pair", nargs=2, action="append", required=True)
    a = ap.parse_args()
    schema = json.load(open(a.schema))
    jsonschema.Draft202012Validator.check_schema(schema)
    key = OKPKey(crv=Ed25519, x=log_public_key(a.log_key))
    for receipt_path, cose_path in a.pair:
        check(schema, key, receipt_path, cose_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
