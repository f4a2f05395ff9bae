"""``python -m benchmarks [--short] [--only NAME ...]``: every figure of issue 9.

Prints ``name value target PASS/FAIL`` per figure as it is measured, then a summary;
exits 1 when a figure misses its target (``--short`` checks only that every figure
can be measured: its small counts say nothing about the targets).
"""

from __future__ import annotations

import argparse
import importlib
import time

SECTIONS = ("sweeps", "log_scale", "log_million", "log_postgres", "client_cost", "live_view")


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--short", action="store_true", help="small counts: checks that every figure can be measured")
    p.add_argument("--only", nargs="*", choices=SECTIONS, help="run only these sections")
    args = p.parse_args(argv)
    failed = []
    lines = 0
    t0 = time.perf_counter()
    for name in args.only or SECTIONS:
        module = importlib.import_module(f"benchmarks.{name}")
        for figure, value, target, ok in module.measure(args.short):
            verdict = "PASS" if ok else "FAIL"
            print(f"{figure}  {_fmt(value)}  {target or '-'}  {verdict}", flush=True)
            lines += 1
            if not ok:
                failed.append(figure)
    print(
        f"# {lines} figures in {time.perf_counter() - t0:.0f} s; "
        + (f"{len(failed)} FAIL" if failed else "all PASS")
        + (" (short run: targets not judged)" if args.short else "")
    )
    return 1 if failed and not args.short else 0
