"""``python -m bench [init] [index] [lifecycle] [evaluation] [ingest] [fanout] [wall] [api] [replay]
[desk_eval] [startup] [scale] [desk_pages] [--profile] [--backend B]``.

Benchmarks.

With no name every benchmark runs. The exit status is 1 when any target fails, else 0.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench import FAIL, PASS, SKIP, Result, console, machine_lines

BENCHMARKS = (
    "init", "index", "lifecycle", "evaluation", "ingest", "fanout", "wall", "api", "replay", "desk_eval",
    "startup", "scale", "desk_pages",
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument(
        "--profile", action="store_true", help="init: run the Chaoyang build under cProfile and print the top"
    )
    parser.add_argument("--seconds", type=float, default=300.0, help="wall: length of the measured run")
    parser.add_argument(
        "--backend", choices=("postgresql", "sqlite", "both"), default="both", help="desk_pages: databases"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)

    console.rule("GridWall benchmarks")
    for line in machine_lines():
        console.print(line, highlight=False)
    console.print()

    started = time.perf_counter()
    results: list[Result] = []
    for name in BENCHMARKS:
        if name not in names:
            continue
        if name == "init":
            from bench import bench_init

            results += bench_init.run(profile=args.profile)
        elif name == "index":
            from bench import bench_index

            results += bench_index.run()
        elif name == "lifecycle":
            from bench import bench_lifecycle

            results += bench_lifecycle.run()
        elif name == "evaluation":
            from bench import bench_evaluation

            results += bench_evaluation.run()
        elif name == "ingest":
            from bench import bench_ingest

            results += bench_ingest.run()
        elif name == "fanout":
            from bench import bench_fanout

            results += bench_fanout.run()
        elif name == "api":
            from bench import bench_api

            results += bench_api.run()
        elif name == "replay":
            from bench import bench_replay

            results += bench_replay.run()
        elif name == "desk_eval":
            from bench import bench_desk_eval

            results += bench_desk_eval.run()
        elif name == "startup":
            from bench import bench_startup

            results += bench_startup.run()
        elif name == "scale":
            from bench import bench_scale

            results += bench_scale.run()
        elif name == "desk_pages":
            from bench import bench_desk_pages

            results += bench_desk_pages.run(backend=args.backend)
        else:
            from bench import bench_wall

            results += bench_wall.run(seconds=args.seconds)
        console.print()

    counts = {s: sum(1 for r in results if r.status == s) for s in (PASS, FAIL, SKIP)}
    console.rule(
        f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return 1 if counts[FAIL] else 0


if __name__ == "__main__":
    sys.exit(main())
