"""moto's S3 server with an emulated first-byte latency: every request waits
`--first-byte-ms` between arriving and being answered.

    python bench/_moto_latency.py --first-byte-ms 50 -H 127.0.0.1 -p PORT

Why. moto on loopback answers a GET within a millisecond, and streams the
object as fast as the two processes can copy it. A real bucket does not: S3
reports the time from a request's arrival to its first response byte
(CloudWatch `FirstByteLatency`) in the tens of milliseconds, and AWS's own
performance guidance puts small-object and first-byte latencies at roughly
100-200 ms. Read-ahead exists to hide that wait, and against bare loopback
there is almost nothing to hide. The wait is a sleep in the request's own
thread (moto's server is threaded), so it costs no CPU and delays no other
request; bytes then flow at loopback speed, as from a bucket in the same region.

Everything else is `python -m moto.server` unchanged (its remaining arguments).
"""

from __future__ import annotations

import argparse
import sys
import time

from moto import server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-byte-ms", type=float, required=True)
    args, moto_args = parser.parse_known_args()
    delay = args.first_byte_ms / 1000
    answer = server.DomainDispatcherApplication.__call__

    def answer_late(app, environ, start_response):
        time.sleep(delay)
        return answer(app, environ, start_response)

    server.DomainDispatcherApplication.__call__ = answer_late
    server.main(moto_args)


if __name__ == "__main__":
    sys.exit(main())
