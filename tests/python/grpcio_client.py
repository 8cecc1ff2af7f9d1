"""A cairn client we did not write the transport of: stock Python grpcio.

Compiles proto/ with grpc_tools, connects over mTLS with a dev member's
certificate, checks standard health and reflection, builds and signs a
TLP:CLEAR incident in Python (Ed25519 from `cryptography`, DSSE PAE written
here), submits it, lists and gets it back, and verifies the receipt in
Python: the checkpoint's C2SP signed-note signature and the RFC 9162
inclusion proof; then erases it with an erasure order signed in Python
(EraseIncident) and verifies that order's receipt.

Run by tests/tests/python_grpcio.rs, which starts the services.
"""

import argparse
import base64
import datetime
import hashlib
import importlib
import os
import sys
import tempfile
import time

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from grpc_tools import protoc


def compile_protos(proto_dir, out_dir):
    import grpc_tools

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    files = [
        os.path.join(proto_dir, p)
        for p in (
            "cairn/common/v1/common.proto",
            "cairn/intake/v1/intake.proto",
            "cairn/evals/v1/evals.proto",
            "cairn/audit/v1/audit.proto",
        )
    ]
    rc = protoc.main(
        ["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"] + files
    )
    if rc != 0:
        sys.exit(f"protoc failed: {rc}")
    for d, _, _ in os.walk(out_dir):
        open(os.path.join(d, "__init__.py"), "a").close()
    sys.path.insert(0, out_dir)


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def uuid7() -> str:
    ms = int(time.time() * 1000)
    rand = bytearray(os.urandom(10))
    b = ms.to_bytes(6, "big") + bytes([0x70 | (rand[0] & 0x0F), rand[1], 0x80 | (rand[2] & 0x3F)]) + bytes(rand[3:10])
    h = b.hex()
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index, size, leaf_h, proof, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        raise ValueError("index beyond tree")
    fn, sn, r = index, size - 1, leaf_h
    for p in proof:
        if sn == 0:
            raise ValueError("proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise ValueError("inclusion proof does not verify")


def verify_checkpoint(note: str, vkey: str):
    """C2SP signed-note with an Ed25519 verifier key; returns (size, root)."""
    name, key_id_hex, material = vkey.split("+", 2)
    material = base64.b64decode(material)
    assert material[0] == 0x01 and len(material) == 33, "not an Ed25519 verifier key"
    key_id = hashlib.sha256(name.encode() + b"\n" + material).digest()[:4]
    assert key_id.hex() == key_id_hex, "verifier key id mismatch"
    text, sigs = note.rsplit("\n\n", 1)
    text += "\n"
    ok = False
    for line in sigs.strip("\n").split("\n"):
        prefix = "\u2014 "
        assert line.startswith(prefix), "bad signature line"
        sig_name, b64 = line[len(prefix):].split(" ", 1)
        raw = base64.b64decode(b64)
        if sig_name == name and raw[:4] == key_id:
            Ed25519PublicKey.from_public_bytes(material[1:]).verify(raw[4:], text.encode())
            ok = True
    assert ok, "no signature by the log key"
    origin, size, root = text.split("\n")[:3]
    assert origin == name, "origin is not the log's name"
    return int(size), base64.b64decode(root)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proto", required=True)
    ap.add_argument("--pki", required=True)
    ap.add_argument("--member", required=True)
    ap.add_argument("--intake", required=True)
    ap.add_argument("--log-key", required=True)
    args = ap.parse_args()

    out = tempfile.mkdtemp(prefix="cairn-py-")
    compile_protos(args.proto, out)
    common = importlib.import_module("cairn.common.v1.common_pb2")
    intake = importlib.import_module("cairn.intake.v1.intake_pb2")
    intake_grpc = importlib.import_module("cairn.intake.v1.intake_pb2_grpc")
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    mdir = os.path.join(args.pki, "members", args.member)
    read = lambda p: open(p, "rb").read()
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(os.path.join(args.pki, "services", "ca.pem")),
        private_key=read(os.path.join(mdir, "tls.key.pem")),
        certificate_chain=read(os.path.join(mdir, "tls.pem")),
    )
    port = args.intake.rsplit(":", 1)[1]
    channel = grpc.secure_channel(f"localhost:{port}", creds)

    # Standard health checking and reflection.
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="cairn.intake.v1.IncidentIntake"), timeout=30)
    assert status.status == health_pb2.HealthCheckResponse.SERVING, status
    print("ok health: SERVING")
    refl = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = list(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=30))
    names = [s.name for s in replies[0].list_services_response.service]
    assert "cairn.intake.v1.IncidentIntake" in names, names
    # A port lists only the services it serves.
    for absent in ("cairn.evals.v1.EvaluationResults", "cairn.audit.v1.AuditLog", "cairn.audit.v1.Witness"):
        assert absent not in names, (absent, names)
    print("ok reflection lists", ", ".join(sorted(names)))

    # Build and sign a TLP:CLEAR incident in Python.
    now = datetime.datetime.now(datetime.timezone.utc)
    ts = lambda dt: common.google_dot_protobuf_dot_timestamp__pb2.Timestamp(seconds=int(dt.timestamp()))
    incident = intake.Incident(
        title="Chatbot leaked another user's medical history",
        summary="A retrieval bug returned another patient's records in a chat answer.",
        occurred_at=ts(now - datetime.timedelta(days=2)),
        detected_at=ts(now - datetime.timedelta(days=1)),
        reported_at=ts(now),
        status=common.INCIDENT_STATUS_INITIAL,
        ai_system=intake.AiSystem(name="CareChat", provider="Example Health AI Ltd"),
        sectors=["healthcare"],
        jurisdictions=["JP"],
        harm_types=[intake.HARM_TYPE_FUNDAMENTAL_RIGHTS],
        severity=common.SEVERITY_MODERATE,
    )
    content = incident.SerializeToString()
    salt = os.urandom(32)
    body = common.RecordBody(clear=common.ClearBody(salt=salt, content=content)).SerializeToString()
    key_ids = read(os.path.join(mdir, "key-ids.txt")).decode().split()
    signing_key = load_pem_private_key(read(os.path.join(mdir, "signing.key.pem")), password=None)
    record_id = uuid7()
    header = common.RecordHeader(
        record_id=common.RecordId(uuid=record_id),
        kind=common.RECORD_KIND_INCIDENT,
        schema_version=1,
        author=common.MemberId(id=args.member),
        signing_key_id=key_ids[0],
        created_at=ts(now),
        label=common.SHARING_LABEL_TLP_CLEAR,
        body_commitment=hashlib.sha256(b"cairn.commitment.v1\x00" + salt + content).digest(),
        body_digest=hashlib.sha256(body).digest(),
        body_size=len(body),
        index=common.IndexFields(
            incident=common.IncidentIndex(
                status=incident.status, severity=incident.severity, sectors=list(incident.sectors), jurisdictions=list(incident.jurisdictions)
            )
        ),
    ).SerializeToString()
    payload_type = "application/vnd.cairn.record-header.v1+protobuf"
    envelope = common.Envelope(
        payload=header,
        payload_type=payload_type,
        signatures=[common.Signature(keyid=key_ids[0], sig=signing_key.sign(pae(payload_type, header)))],
    ).SerializeToString()
    record = common.SignedRecord(envelope=envelope, body=body)

    stub = intake_grpc.IncidentIntakeStub(channel)
    resp = stub.SubmitIncident(intake.SubmitIncidentRequest(record=record), timeout=30)
    assert resp.record_id.uuid == record_id and not resp.receipt_pending, resp
    print("ok submitted", record_id)

    # Verify the receipt in Python.
    r = resp.receipt
    size, root = verify_checkpoint(r.checkpoint, args.log_key)
    verify_inclusion(r.leaf_index, size, leaf_hash(r.leaf), list(r.inclusion_proof), root)
    leaf = common.LogLeaf.FromString(r.leaf)
    assert leaf.envelope_digest == hashlib.sha256(envelope).digest(), "the leaf names another envelope"
    assert leaf.clear.record_id.uuid == record_id
    print(f"ok receipt: checkpoint signature and inclusion of leaf {r.leaf_index} in a tree of {size} verified")

    # List and get it back.
    listed = stub.ListIncidents(intake.ListIncidentsRequest(page_size=500), timeout=30)
    ids = [common.RecordHeader.FromString(common.Envelope.FromString(x.record.envelope).payload).record_id.uuid for x in listed.records]
    assert record_id in ids, ids
    got = stub.GetIncident(intake.GetIncidentRequest(record_id=common.RecordId(uuid=record_id)), timeout=30).record
    assert got.record.envelope == envelope and got.record.body == body
    assert got.receipt == r
    print("ok listed and fetched back, byte for byte")

    # Erase it with an order signed in Python (cairn.common.v1.ErasureOrder,
    # DSSE as above): the body is gone, the header and receipt stay, and the
    # order's own receipt names the order's exact bytes.
    order_type = "application/vnd.cairn.erasure-order.v1+protobuf"
    order_payload = common.ErasureOrder(
        record_id=common.RecordId(uuid=record_id),
        reason="test of EraseIncident from grpcio",
        ordered_by=common.MemberId(id=args.member),
        signing_key_id=key_ids[0],
        ordered_at=ts(datetime.datetime.now(datetime.timezone.utc)),
    ).SerializeToString()
    order = common.Envelope(
        payload=order_payload,
        payload_type=order_type,
        signatures=[common.Signature(keyid=key_ids[0], sig=signing_key.sign(pae(order_type, order_payload)))],
    ).SerializeToString()
    erased = stub.EraseIncident(intake.EraseIncidentRequest(order=order), timeout=30)
    assert not erased.receipt_pending, erased
    size, root = verify_checkpoint(erased.receipt.checkpoint, args.log_key)
    verify_inclusion(erased.receipt.leaf_index, size, leaf_hash(erased.receipt.leaf), list(erased.receipt.inclusion_proof), root)
    assert common.LogLeaf.FromString(erased.receipt.leaf).envelope_digest == hashlib.sha256(order).digest()
    got = stub.GetIncident(intake.GetIncidentRequest(record_id=common.RecordId(uuid=record_id)), timeout=30).record
    assert got.state == common.RECORD_STATE_ERASED and got.record.body == b"" and got.record.envelope == envelope, got.state
    assert got.erasure_order == order and got.receipt == r
    print(f"ok erased by an order signed in Python; the order is leaf {erased.receipt.leaf_index}, verified")

    # A TLS 1.2-only client, even with a valid member certificate, is refused
    # in the handshake (cairn speaks TLS 1.3 only).
    import socket
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(os.path.join(args.pki, "services", "ca.pem"))
    ctx.load_cert_chain(os.path.join(mdir, "tls.pem"), os.path.join(mdir, "tls.key.pem"))
    ctx.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost"):
                sys.exit("a TLS 1.2 handshake succeeded")
    except ssl.SSLError as e:
        print("ok TLS 1.2-only client refused:", e.reason)

    # A refusal is a gRPC status naming the problem.
    try:
        stub.GetIncident(intake.GetIncidentRequest(record_id=common.RecordId(uuid="not-a-uuid")), timeout=30)
        sys.exit("a malformed id was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "record_id" in e.details(), e
        print("ok malformed id refused:", e.code().name, e.details())


if __name__ == "__main__":
    main()
