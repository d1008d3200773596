"""``python -m bench [NAME ...] [--smoke] [--profile] [--seconds S] [--backend B]``.

Benchmarks: init, index, lifecycle, evaluation, ingest, fanout, wall, api, replay, desk_eval, startup,
scale, desk_pages, patrol, handset, tiles, components, roadgrid, and the hardening harness (issue 20):
fuzz, faults, soak.
With no name every benchmark runs. Current figures: BENCHMARKS.md.

``--smoke`` runs each named benchmark on a tiny workload through the same code (seconds each); speed
targets are then not judged, correctness checks are. tests/test_bench_smoke.py runs every smoke run.

The exit status is 1 when a benchmark raised, returned no rows, or a row failed; else 0.
"""

from __future__ import annotations

import argparse
import sys
import time

import bench
from bench import FAIL, PASS, SKIP, Result, console, machine_lines

BENCHMARKS = (
    "init", "index", "lifecycle", "evaluation", "ingest", "fanout", "wall", "api", "replay", "desk_eval",
    "startup", "scale", "desk_pages", "patrol", "handset", "tiles", "components", "component_tiles",
    "roadgrid", "fuzz",
    "faults", "soak", "duplicates", "handover", "risk", "blindspots",
)  # fmt: skip

# the smoke runs of the benchmarks whose run() takes sizes (their modules are shared with other work)
SMOKE_INGEST = {"n_batched": 2_000, "n_single": 300}
SMOKE_API_FIXES = 2_000
# benchmarks without a smoke run yet: `--smoke` leaves them out and says so (none at present)
NO_SMOKE: dict[str, str] = {}


def _run(name: str, args: argparse.Namespace) -> list[Result]:
    """Run one benchmark (imported on demand: each pulls in its own dependencies)."""
    smoke: bool = args.smoke
    if name == "init":
        from bench import bench_init

        return bench_init.run(profile=args.profile, smoke=smoke)
    if name == "index":
        from bench import bench_index

        return bench_index.run(smoke=smoke)
    if name == "lifecycle":
        from bench import bench_lifecycle

        return bench_lifecycle.run(smoke=smoke)
    if name == "evaluation":
        from bench import bench_evaluation

        return bench_evaluation.run(smoke=smoke)
    if name == "ingest":
        from bench import bench_ingest

        return bench_ingest.run(**SMOKE_INGEST) if smoke else bench_ingest.run()
    if name == "fanout":
        from bench import bench_fanout

        return bench_fanout.run(smoke=smoke)
    if name == "wall":
        from bench import bench_wall

        return bench_wall.run(seconds=args.seconds, smoke=smoke, basemap=args.basemap)
    if name == "api":
        from bench import bench_api

        return bench_api.run(n_fixes=SMOKE_API_FIXES) if smoke else bench_api.run()
    if name == "replay":
        from bench import bench_replay

        return bench_replay.run(smoke=smoke)
    if name == "desk_eval":
        from bench import bench_desk_eval

        return bench_desk_eval.run(smoke=smoke)
    if name == "startup":
        from bench import bench_startup

        return bench_startup.run(smoke=smoke)
    if name == "scale":
        from bench import bench_scale

        return bench_scale.run(smoke=smoke)
    if name == "desk_pages":
        from bench import bench_desk_pages

        return bench_desk_pages.run(backend=args.backend, smoke=smoke)
    if name == "patrol":
        from bench import bench_patrol

        return bench_patrol.run(smoke=smoke)
    if name == "handset":
        from bench import bench_handset

        return bench_handset.run(smoke=smoke)
    if name == "tiles":
        from bench import bench_tiles

        return bench_tiles.run(smoke=smoke)
    if name == "roadgrid":
        from bench import bench_roadgrid

        return bench_roadgrid.run(smoke=smoke)
    if name == "duplicates":
        from bench import bench_duplicates

        return bench_duplicates.run(smoke=smoke)
    if name == "handover":
        from bench import bench_handover

        return bench_handover.run(smoke=smoke)
    if name == "component_tiles":
        from bench import bench_component_tiles

        return bench_component_tiles.run(smoke=smoke)
    if name == "blindspots":
        from bench import bench_blindspots

        return bench_blindspots.run(smoke=smoke)
    if name == "risk":
        from bench import bench_risk

        return bench_risk.run(smoke=smoke)
    if name == "components":
        from bench import bench_components

        return bench_components.run(smoke=smoke)
    if name == "fuzz":
        from bench import bench_fuzz

        schemas = tuple(args.schemas.split(",")) if args.schemas else bench_fuzz.SCHEMAS
        return bench_fuzz.run(smoke=smoke, schemas=schemas, budget_s=args.budget)
    if name in ("faults", "soak"):  # the hardening harness: each prints its own table too
        import importlib

        return importlib.import_module(f"bench.bench_{name}").run(smoke=smoke)
    raise AssertionError(name)


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmarks (all by default), print their tables and a summary line per benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("names", nargs="*", help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--smoke", action="store_true", help="tiny workloads, same code; speed not judged")
    parser.add_argument(
        "--profile", action="store_true", help="init: run the Chaoyang build under cProfile and print the top"
    )
    parser.add_argument("--seconds", type=float, default=300.0, help="wall: length of the measured run")
    parser.add_argument("--basemap", action="store_true", help="wall: with a road basemap under the map")
    parser.add_argument(
        "--backend", choices=("postgresql", "sqlite", "both"), default="both", help="desk_pages: databases"
    )
    parser.add_argument(
        "--schemas", help="fuzz: schemas to fuzz, comma-separated (default: all; e.g. 'dash desk,dash kiosk')"
    )
    parser.add_argument("--budget", type=float, help="fuzz: seconds per schema at most (default 900)")
    args = parser.parse_args(argv)
    if args.schemas and "fuzz" in args.names:
        from bench.bench_fuzz import SCHEMAS

        if bad := set(args.schemas.split(",")) - set(SCHEMAS):
            parser.error(f"unknown fuzz schema(s) {', '.join(sorted(bad))}; choose from {', '.join(SCHEMAS)}")
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = [n for n in BENCHMARKS if n in (args.names or BENCHMARKS)]
    bench.SMOKE = args.smoke

    console.rule("GridWall benchmarks" + (" (smoke: tiny workloads, speed not judged)" if args.smoke else ""))
    for line in machine_lines():
        console.print(line, highlight=False)
    console.print()

    started = time.perf_counter()
    results: list[Result] = []
    summary: list[str] = []
    broken = 0
    for name in names:
        if args.smoke and name in NO_SMOKE:
            summary.append(f"{name}: {NO_SMOKE[name]}")
            continue
        t0 = time.perf_counter()
        try:
            rows = _run(name, args)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            console.print_exception()
            summary.append(f"{name}: ERROR {exc!r}"[:300])
            broken += 1
            continue
        results += rows
        counts = {s: sum(1 for r in rows if r.status == s) for s in (PASS, FAIL, SKIP)}
        if not rows:
            broken += 1
        # the line tests/test_bench_smoke.py reads: "<name>: <n> result rows (...)"
        summary.append(
            f"{name}: {len(rows)} result rows ({counts[PASS]} passed, {counts[FAIL]} failed, "
            f"{counts[SKIP]} skipped) in {time.perf_counter() - t0:.0f} s"
        )
        console.print()

    counts = {s: sum(1 for r in results if r.status == s) for s in (PASS, FAIL, SKIP)}
    for line in summary:
        console.print(line, highlight=False, markup=False)
    console.rule(
        f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped, {broken} broken "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return 1 if counts[FAIL] or broken else 0


if __name__ == "__main__":
    sys.exit(main())
