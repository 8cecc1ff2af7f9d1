#!/usr/bin/env bash
# Side by side (issue [F]): medallion, the OASIS TAXII 2.1 reference server,
# with its memory backend on loopback, receiving N STIX 2.1 incidents
# through taxii2-client; then cairn's load bench with the same N on the
# same machine. Not part of CI: it installs medallion, taxii2-client and
# stix2 from PyPI into target/taxii-venv.
#
#   bench/taxii-compare.sh [N] [CLIENTS] [PER_ENVELOPE]   (defaults: 5000, 8, 100)
#
# Two comparisons: one object per request against cairn's unary submit,
# and PER_ENVELOPE objects per Add Objects request against cairn's bulk
# path (one SubmitIncidents stream per connection). medallion is started
# afresh for each (its memory backend slows as the collection grows).
#
# What each side does per item differs, and the output says so: medallion
# keeps objects in memory, over plain HTTP with basic auth, no signature,
# no encryption, no fsync, no log; cairn verifies an Ed25519 signature,
# stores a sealed 4 KiB body durably (fdatasync), appends to the audit
# log and returns a receipt, over mutually authenticated TLS 1.3.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5000}
C=${2:-8}
K=${3:-100}
MODES=${MODES:-unary bulk}   # e.g. MODES=bulk for the bulk comparison alone
BODY=4096
VENV=target/taxii-venv

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q medallion taxii2-client stix2
fi

WORK=$(mktemp -d)
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ROOT="http://127.0.0.1:$PORT/api1/"
COLLECTION=91a7b528-80eb-42ed-a74d-c6fbd5a26116
cat > "$WORK/data.json" <<JSON
{
  "/discovery": {"title": "bench", "default": "$ROOT", "api_roots": ["$ROOT"]},
  "api1": {
    "information": {"title": "bench", "versions": ["application/taxii+json;version=2.1"],
                    "max_content_length": 10485760},
    "status": [],
    "collections": [{"id": "$COLLECTION", "title": "incidents", "can_read": true,
                     "can_write": true,
                     "media_types": ["application/stix+json;version=2.1"],
                     "objects": [], "manifest": []}]
  }
}
JSON
cat > "$WORK/config.json" <<JSON
{
  "users": {"bench": "bench"},
  "taxii": {"max_page_size": 100},
  "backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend",
              "filename": "$WORK/data.json"}
}
JSON
medallion() { # objects per envelope
  "$VENV/bin/medallion" --host 127.0.0.1 --port "$PORT" --log-level ERROR "$WORK/config.json" \
    > "$WORK/medallion.log" 2>&1 &
  SERVER=$!
  # Wait (at most 10 s) until it answers discovery.
  UP=
  for _ in $(seq 1 100); do
    if curl -sf -u bench:bench -H 'Accept: application/taxii+json;version=2.1' \
         "http://127.0.0.1:$PORT/taxii2/" > /dev/null; then UP=1; break; fi
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$UP" ]; then
    echo "medallion did not start:" >&2; cat "$WORK/medallion.log" >&2; exit 1
  fi
  echo "== medallion $("$VENV/bin/pip" show medallion | awk '/^Version/{print $2}') (memory backend, plain HTTP, no signature/encryption/fsync), $1 per envelope"
  "$VENV/bin/python" bench/taxii_post.py "${ROOT}collections/$COLLECTION/" "$N" "$C" "$BODY" "$1"
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=
}

if [[ $MODES == *unary* ]]; then
  medallion 1
  echo "== cairn (mTLS 1.3, signed, sealed to 3, durable, audit receipt)"
  cargo bench -q -p cairn-tests --bench load -- --count "$N" --connections "$C" --in-flight 128 --body "$BODY" \
    | grep -E 'throughput|accepted|CPU'
fi

if [[ $MODES == *bulk* ]]; then
  medallion "$K"
  echo "== cairn bulk (SubmitIncidents, one stream per connection; the same work per record)"
  cargo bench -q -p cairn-tests --bench load -- --mode bulk --count "$N" --connections "$C" --body "$BODY" \
    | grep -E 'throughput|bulk'
fi
