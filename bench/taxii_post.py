"""Posts N STIX 2.1 incidents to a TAXII 2.1 collection with taxii2-client,
C at a time, one object per Add Objects request (as cairn's load bench
submits one record per call), and prints the rate.

Used by bench/taxii-compare.sh; not part of CI.
"""

import sys
import time
from concurrent.futures import ThreadPoolExecutor

import stix2
from taxii2client.v21 import Collection


def main() -> None:
    url, n, c, body = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    # Built before the timed phase, as the cairn bench builds its records.
    objects = [
        stix2.v21.Incident(
            name=f"load {i}",
            description="x" * body,
        ).serialize()
        for i in range(n)
    ]
    envelopes = ['{"objects": [%s]}' % o for o in objects]
    collections = [Collection(url, user="bench", password="bench") for _ in range(c)]

    def post(i: int) -> bool:
        status = collections[i % c].add_objects(envelopes[i])
        return status.success_count == 1

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=c) as pool:
        ok = sum(pool.map(post, range(n)))
    elapsed = time.monotonic() - start
    print(f"medallion: {ok} of {n} incidents accepted in {elapsed:.1f} s, "
          f"{ok / elapsed:.0f} objects/s ({c} clients)")
    if ok != n:
        sys.exit(1)


if __name__ == "__main__":
    main()
