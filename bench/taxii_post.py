"""Posts N STIX 2.1 incidents to a TAXII 2.1 collection with taxii2-client,
C at a time, K objects per Add Objects request (default 1, as cairn's load
bench submits one record per call; more for the bulk comparison), and
prints the rate.

Used by bench/taxii-compare.sh; not part of CI.
"""

import sys
import time
from concurrent.futures import ThreadPoolExecutor

import stix2
from taxii2client.v21 import Collection


def main() -> None:
    url, n, c, body = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    k = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    # Built before the timed phase, as the cairn bench builds its records.
    objects = [
        stix2.v21.Incident(
            name=f"load {i}",
            description="x" * body,
        ).serialize()
        for i in range(n)
    ]
    envelopes = [
        '{"objects": [%s]}' % ",".join(objects[i:i + k]) for i in range(0, n, k)
    ]
    collections = [Collection(url, user="bench", password="bench") for _ in range(c)]

    def post(i: int) -> int:
        return collections[i % c].add_objects(envelopes[i]).success_count

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=c) as pool:
        ok = sum(pool.map(post, range(len(envelopes))))
    elapsed = time.monotonic() - start
    print(f"medallion: {ok} of {n} incidents accepted in {elapsed:.1f} s, "
          f"{ok / elapsed:.0f} objects/s ({c} clients, {k} per envelope)")
    if ok != n:
        sys.exit(1)


if __name__ == "__main__":
    main()
