"""cairn's TAXII 2.1 gateway, driven by tools we did not write.

taxii2-client (OASIS) discovers the gateway, lists its collections, pages
through every readable collection with as_pages, reads manifests and
versions, and adds an incident written here (not copied from the
gateway's output); stix2-validator (OASIS) validates every object served
(errors fail; its only warnings are that cairn's deterministic ids are
UUIDv5, not v4); jsonschema checks cairn's extension content against the
published schemas. Prints the record id the added incident became as
`added-record <id>` for the Rust test to open as a recipient.

Run by tests/tests/taxii_gateway.rs.
"""

import argparse
import json
import sys
import uuid

import jsonschema
import requests
from stix2validator import ValidationOptions, validate_instance
from taxii2client.v21 import Server, as_pages

TLP_AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
TLP_GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"


def check(cond, what):
    if not cond:
        print("FAIL", what)
        sys.exit(1)
    print("ok", what)


def all_objects(collection, per_request):
    objects, pages = [], 0
    for envelope in as_pages(collection.get_objects, per_request=per_request):
        pages += 1
        objects.extend(envelope.get("objects", []))
    return objects, pages


def validate(objects):
    options = ValidationOptions(version="2.1")
    warnings = set()
    for obj in objects:
        result = validate_instance(obj, options)
        errors = [str(e) for e in result.errors]
        check(result.is_valid and not errors, f"stix2-validator: {obj['id']} valid ({errors})")
        for w in result.warnings:
            warnings.add(str(w).split(":")[0] if "UUIDv4" not in str(w) else "not a UUIDv4 id")
    return warnings


def incident(ext_id, author_identity, title, marking, recipients):
    now = "2026-12-02T10:00:00.000Z"
    return {
        "type": "incident",
        "spec_version": "2.1",
        "id": f"incident--{uuid.uuid4()}",
        "created": now,
        "modified": now,
        "created_by_ref": author_identity,
        "name": title,
        "description": "A chatbot deployed by a utility gave customers wrong shut-off instructions.",
        "object_marking_refs": [marking],
        "extensions": {
            ext_id: {
                "extension_type": "property-extension",
                "recipients": recipients,
                "incident": {
                    "occurred_at": "2026-12-01T08:00:00Z",
                    "detected_at": "2026-12-01T09:00:00Z",
                    "reported_at": "2026-12-02T09:00:00Z",
                    "status": "INCIDENT_STATUS_INITIAL",
                    "ai_system": {"name": "GridHelp", "provider": "Example Utility AI"},
                    "sectors": ["energy"],
                    "jurisdictions": ["JP"],
                    "harm_types": ["HARM_TYPE_CRITICAL_INFRASTRUCTURE"],
                    "severity": "SEVERITY_MODERATE",
                },
            }
        },
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--discovery", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--member-identity", required=True)
    p.add_argument("--recipient", required=True)
    p.add_argument("--ai-extension", required=True)
    p.add_argument("--incident-schema", required=True)
    p.add_argument("--evaluation-schema", required=True)
    a = p.parse_args()

    server = Server(a.discovery, user=a.user, password=a.password, verify=a.ca)
    check(server.title.startswith("cairn TAXII gateway"), f"discovery: {server.title}")
    root = server.default
    check(root.versions == ["application/taxii+json;version=2.1"], "API root speaks TAXII 2.1")
    collections = {c.alias: c for c in root.collections}
    check(len(collections) == 11 and "incidents-tlp-amber" in collections, "11 collections listed")

    served = []
    for alias, c in sorted(collections.items()):
        objects, pages = all_objects(c, per_request=2)
        manifest = c.get_manifest().get("objects", [])
        check(len(manifest) == len(objects), f"{alias}: {len(objects)} objects in {pages} page(s), manifest agrees")
        served.extend(objects)
    green = collections["incidents-tlp-green"]
    paged, pages = all_objects(green, per_request=1)
    check(len(paged) >= 3 and pages == len(paged), f"as_pages one by one: {pages} pages")
    warnings = validate(served)
    print("stix2-validator warnings:", sorted(warnings))

    incident_schema = json.load(open(a.incident_schema))
    evaluation_schema = json.load(open(a.evaluation_schema))
    for obj in served:
        if obj["type"] == "incident":
            jsonschema.validate(obj["extensions"][a.ai_extension], incident_schema)
        if obj["type"] == "x-cairn-evaluation-result":
            jsonschema.validate(obj, evaluation_schema)
    kinds = sorted({o["type"] for o in served})
    check({"incident", "identity", "marking-definition", "x-cairn-evaluation-result", "sighting", "relationship"} <= set(kinds), f"served kinds: {kinds}")
    check(all(o["type"] != "incident" or a.ai_extension in o["extensions"] for o in served), "jsonschema: every cairn extension fits its schema")

    # A correction is a new version of its object, a retraction a revoked one.
    revoked = [o for o in served if o["type"] == "incident" and o.get("revoked")]
    check(len(revoked) == 1 and revoked[0]["name"].endswith("(corrected)"), "the retracted correction is served revoked")
    latest = green.get_object(revoked[0]["id"]).get("objects", [])
    check(len(latest) == 1 and latest[0].get("revoked"), "get one object: its latest (revoked) version")
    versions = green.object_versions(revoked[0]["id"]).get("versions", [])
    check(len(versions) == 3 and versions == sorted(versions), f"its versions: {versions}")
    every = green.get_objects(version="all").get("objects", [])
    check(len(every) == len(paged) + 2, "match[version]=all adds the two earlier versions")
    first = green.get_object(revoked[0]["id"], version="first")["objects"][0]
    check(not first.get("revoked") and not first["name"].endswith("(corrected)"), "match[version]=first: the original")

    # Add an incident written here, TLP:AMBER to the recipient.
    amber = collections["incidents-tlp-amber"]
    obj = incident(a.ai_extension, a.member_identity, "Utility chatbot gave wrong shut-off steps", TLP_AMBER, [a.recipient])
    marking = next(o for o in served if o["id"] == TLP_AMBER)
    status = amber.add_objects({"objects": [obj, marking]})
    check(status.status == "complete" and status.success_count == 2 and status.failure_count == 0, f"added: {status.successes}")
    message = next(s["message"] for s in status.successes if s["id"] == obj["id"])
    record_id = message.split(" as record ")[1].split(" ")[0]
    print("added-record", record_id)
    again = amber.add_objects({"objects": [obj]})
    check("already shared as record " + record_id in again.successes[0]["message"], "adding it again shares nothing new")
    newer = dict(obj, modified="2026-12-02T11:00:00.000Z", name="Utility chatbot gave wrong shut-off steps (corrected)")
    status = amber.add_objects({"objects": [newer]})
    check(status.success_count == 1 and "shared as correction" in status.successes[0]["message"], f"a newer version is a correction: {status.successes}")
    older = dict(obj, modified="2026-12-02T10:30:00.000Z")
    status = amber.add_objects({"objects": [older]})
    check(status.failure_count == 1 and "older than version" in status.failures[0]["message"], f"an older version is refused: {status.failures}")

    # One envelope: a new object in two versions (one after the other) and
    # two more new ones (together on the bulk path).
    x1 = incident(a.ai_extension, a.member_identity, "Two versions, first", TLP_AMBER, [a.recipient])
    x2 = dict(x1, modified="2026-12-02T12:00:00.000Z", name="Two versions, second")
    y = incident(a.ai_extension, a.member_identity, "Another one", TLP_AMBER, [a.recipient])
    z = incident(a.ai_extension, a.member_identity, "And one more", TLP_AMBER, [a.recipient])
    status = amber.add_objects({"objects": [x1, y, x2, z]})
    messages = [s["message"] for s in status.successes]
    check(status.success_count == 4 and sum("shared as correction" in m for m in messages) == 1, f"one envelope, four records: {messages}")

    # Refusals: per object in the status, the rest is still shared.
    no_ext = incident(a.ai_extension, a.member_identity, "no extension", TLP_AMBER, [a.recipient])
    del no_ext["extensions"]
    green_here = incident(a.ai_extension, a.member_identity, "green in amber", TLP_GREEN, [])
    not_mine = incident(a.ai_extension, "identity--" + str(uuid.uuid4()), "someone else's", TLP_AMBER, [a.recipient])
    indicator = {"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.uuid4()}"}
    status = amber.add_objects({"objects": [no_ext, green_here, not_mine, indicator]})
    check(status.success_count == 0 and status.failure_count == 4, "four bad objects refused")
    for f in status.failures:
        print("  refused:", f["id"].split("--")[0], "-", f["message"])

    # Requests outside the specification.
    objects_url = amber.url + "objects/"
    r = requests.get(objects_url, verify=a.ca)
    check(r.status_code == 401 and "Basic" in r.headers.get("WWW-Authenticate", ""), "no credentials: 401")
    auth = (a.user, a.password)
    r = requests.get(objects_url, verify=a.ca, auth=auth, headers={"Accept": "text/html"})
    check(r.status_code == 406 and r.json()["http_status"] == "406", "Accept text/html: 406")
    r = requests.get(objects_url, verify=a.ca, auth=auth, params={"limit": "zero"})
    check(r.status_code == 400 and "limit" in r.json()["description"], "limit=zero: 400")
    r = requests.post(objects_url, verify=a.ca, auth=auth, data="{}", headers={"Content-Type": "application/json"})
    check(r.status_code == 415, "add with Content-Type application/json: 415")
    r = requests.post(objects_url, verify=a.ca, auth=auth, data="not json", headers={"Content-Type": "application/taxii+json;version=2.1"})
    check(r.status_code == 400, "add a body that is not JSON: 400")
    network = collections["network"]
    r = requests.post(network.url + "objects/", verify=a.ca, auth=auth, data=json.dumps({"objects": [obj]}), headers={"Content-Type": "application/taxii+json;version=2.1"})
    check(r.status_code == 403, "add to the read-only network collection: 403")
    r = requests.get(root.url + "collections/no-such/objects/", verify=a.ca, auth=auth)
    check(r.status_code == 404, "unknown collection: 404")
    print("all TAXII checks passed")


if __name__ == "__main__":
    main()
