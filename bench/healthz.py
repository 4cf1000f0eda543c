"""The health checks a load balancer calls every few seconds from every node: requests per
second and latency of `/healthz` (is the process up: touches neither PostgreSQL nor Redis)
and `/healthz/deep` (checks both), beside the hello-world Flask app on the same server
settings.

Prints one table and the database transactions the server began per `/healthz` call (none:
a database under strain must not also be asked whether the web process is alive).

    python bench/healthz.py --connections 32 --seconds 10

It needs PostgreSQL, Redis and wrk (the database named by --database is dropped and
recreated).
"""

from __future__ import annotations

import sys
import time

from harness import (
    STATISTICS_DELAY,
    argument_parser,
    cohort_server,
    fresh_app,
    hello_world,
    load_get,
    print_table,
    settings_line,
    transactions,
)


def main() -> None:
    parser = argument_parser(__doc__, connections=32)
    args = parser.parse_args()
    fresh_app(args.database, args.redis)
    hello = hello_world(args)
    rows = []
    with cohort_server(args) as server:
        load_get(server.base + "/healthz", args.connections, 1)  # warm-up
        time.sleep(STATISTICS_DELAY)  # what starting the server did is reported first
        before = transactions(args.database)
        shallow = load_get(server.base + "/healthz", args.connections, args.seconds)
        time.sleep(STATISTICS_DELAY)
        begun = transactions(args.database) - before
        rows.append(("/healthz", shallow))
        rows.append(
            (
                "/healthz/deep",
                load_get(server.base + "/healthz/deep", args.connections, args.seconds),
            )
        )

    print("health checks")
    print(settings_line(args))
    print_table("", rows, hello, "req")
    print(f"database transactions begun for /healthz: {begun} for {shallow.requests} calls")
    ok = all(set(f.statuses) == {200} and not f.socket_errors for _n, f in rows)
    print("all answered 200" if ok else "NOT ALL ANSWERED 200")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
