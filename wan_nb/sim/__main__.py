"""``python -m wan_nb.sim``: serve the simulator until Ctrl-C.

Prints exactly one line on stdout, the base URL, so scripts can read it
(``URL=$(python -m wan_nb.sim ... | head -1)``); everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
import time

from ._simulator import Simulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m wan_nb.sim", description="Serve the Wan 2.7 image API simulator.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8765, help="port (0 = any free port)")
    p.add_argument("--latency", type=float, default=2.0, help="seconds a task spends processing")
    p.add_argument("--concurrency", type=int, default=4, help="tasks processing at once")
    p.add_argument("--link-ttl", type=float, default=86400, help="seconds result links stay valid")
    p.add_argument("--api-key", default=None, help="the only Bearer key accepted (default: any)")
    p.add_argument("--seed", type=int, default=None, help="repeatable random seeds and faults")
    p.add_argument("--balance-quota", type=int, default=None, help="account balance in quota (500000 = 1 USD)")
    p.add_argument("--max-result-mb", type=float, default=256,
                   help="memory for result images; past it the oldest links expire early (default 256)")
    p.add_argument("--urls-only", action="store_true",
                   help="hosted-like: no /sim/uploads; inputs must be its own result links or loopback URLs")
    p.add_argument("--error-rate", type=float, default=None, help="fraction of API requests answered 5xx")
    p.add_argument("--error-status", type=int, default=None, help="status of those answers (default 503)")
    p.add_argument("--rate-cap", type=int, default=None, help="at most this many submits per window")
    p.add_argument("--rate-window", type=float, default=None, help="rate window in seconds (default 60)")
    p.add_argument("--drop-rate", type=float, default=None, help="fraction of requests dropped unanswered")
    p.add_argument("--slow", type=float, default=None, help="seconds added before every API answer")
    p.add_argument("--task-fail-rate", type=float, default=None, help="fraction of tasks that end failed")
    p.add_argument("--task-fail-code", default=None, help="error code of those tasks (default task_failed)")
    p.add_argument("--corrupt-rate", type=float, default=None,
                   help="fraction of image downloads sent truncated (they do not decode)")
    p.add_argument("--omit-header", dest="omit_headers", action="append", choices=("Retry-After", "Date"),
                   default=None, help="leave this header out of every answer (repeatable)")
    p.add_argument("--retry-after", choices=("seconds", "date"), default=None,
                   help="write a 429's Retry-After in seconds (default) or as an HTTP date")
    return p.parse_args(argv)


FAULT_OPTIONS = ("error_rate", "error_status", "rate_cap", "rate_window", "drop_rate", "slow",
                 "task_fail_rate", "task_fail_code", "corrupt_rate", "omit_headers", "retry_after")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    faults = {k: getattr(args, k) for k in FAULT_OPTIONS if getattr(args, k) is not None}
    try:
        sim = Simulator(latency=args.latency, concurrency=args.concurrency, link_ttl=args.link_ttl,
                        max_result_mb=args.max_result_mb, urls_only=args.urls_only,
                        host=args.host, port=args.port, api_key=args.api_key, seed=args.seed,
                        balance_quota=args.balance_quota, faults=faults).start()
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(sim.base_url, flush=True)
    print("wan_nb simulator running; Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
