"""``python -m bench.compare REV NAME [NAME ...] [--rounds N] [--seconds S] [--backend B]``.

Runs benchmarks side by side on an earlier commit and on this working tree, in one run on one machine
(issue 15: "at least as good as before, measured side by side with the previous commit in the same
run"). ``REV`` is checked out into a temporary git worktree; each benchmark then runs alternately on
the two trees (``REV`` first in odd rounds, this tree first in even rounds, so a load that drifts
during the run does not favour one side), each time in a fresh process started in that tree, and the
result rows of both are printed next to each other with the ratio of their rates.

A benchmark of either tree is called through its module's ``run`` function (``bench.bench_NAME.run``),
which every tree since the benchmarks began has had; ``--seconds`` goes to fanout, wall and scale,
``--backend`` to desk_pages. The worktree is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from bench import ROOT, console, machine_lines

# the child: import the tree's benchmark module, run it, print its rows as one JSON line after MARK
MARK = "@@bench.compare@@"
CHILD = """
import dataclasses, importlib, json, sys
sys.path.insert(0, sys.argv[1])
kwargs = json.loads(sys.argv[3])
rows = importlib.import_module("bench.bench_" + sys.argv[2]).run(**kwargs)
print(sys.argv[4] + json.dumps([dataclasses.asdict(r) for r in rows]), flush=True)
"""

TAKES_SECONDS = ("fanout", "wall", "scale")


@dataclass(frozen=True)
class Row:
    """One result row of one run of one tree."""

    tree: str
    round: int
    benchmark: str
    n: int | None
    seconds: float | None
    unit: str
    status: str
    notes: str

    @property
    def rate(self) -> float | None:
        """Items per second, when the row has both."""
        return self.n / self.seconds if self.n and self.seconds else None


def kwargs_for(name: str, seconds: float | None, backend: str | None) -> dict[str, Any]:
    """The keyword arguments of ``bench.bench_NAME.run`` for the options given."""
    kw: dict[str, Any] = {}
    if seconds is not None and name in TAKES_SECONDS:
        kw["seconds"] = seconds
    if backend is not None and name == "desk_pages":
        kw["backend"] = backend
    return kw


def run_once(tree: Path, label: str, rnd: int, name: str, kwargs: dict[str, Any]) -> list[Row]:
    """One benchmark in a fresh process started in ``tree``; its rows (none if it raised)."""
    console.rule(f"{name} on {label} (round {rnd})")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tree), name, json.dumps(kwargs), MARK],
        cwd=tree, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    rows: list[Row] = []
    assert proc.stdout is not None
    for line in proc.stdout:  # the benchmark's own output goes on to the terminal
        if line.startswith(MARK):
            for r in json.loads(line[len(MARK) :]):
                rows.append(Row(label, rnd, r["benchmark"], r["n"], r["seconds"], r["unit"], r["status"],
                                r["notes"]))  # fmt: skip
        else:
            sys.stdout.write(line)
    if proc.wait() != 0:
        console.print(f"[red]{name} on {label} exited {proc.returncode}[/red]")
    return rows


def table(name: str, rows: list[Row], before: str, after: str) -> Table:
    """Rows of both trees next to each other, one line per result row and round."""
    t = Table(title=f"{name}: {before} vs {after}", box=box.SIMPLE_HEAVY, title_justify="left")
    for col in ("round", "row", f"{before} rate", f"{after} rate", "ratio", f"{before}", f"{after}"):
        t.add_column(col, overflow="fold")
    keys = sorted({(r.round, r.benchmark) for r in rows}, key=lambda k: (k[0], k[1]))
    for rnd, bench_row in keys:
        b = next((r for r in rows if r.tree == before and (r.round, r.benchmark) == (rnd, bench_row)), None)
        a = next((r for r in rows if r.tree == after and (r.round, r.benchmark) == (rnd, bench_row)), None)
        ratio = f"{a.rate / b.rate:.2f}" if a and b and a.rate and b.rate else ""

        def rate(r: Row | None) -> str:
            if r is None:
                return "(no row)"
            return f"{r.rate:,.0f} {r.unit}/s" if r.rate else (f"{r.seconds:.3f} s" if r.seconds else "")

        def said(r: Row | None) -> str:
            return f"{r.status} {r.notes}"[:160] if r else ""

        t.add_row(str(rnd), bench_row, rate(b), rate(a), ratio, said(b), said(a))
    return t


def main(argv: list[str] | None = None) -> int:
    """Check out REV, run each named benchmark on it and on this tree alternately, print both."""
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("rev", help="the earlier commit (any git revision)")
    p.add_argument("names", nargs="+", help="benchmarks, as python -m bench names them")
    p.add_argument("--rounds", type=int, default=1, help="runs of each benchmark on each tree")
    p.add_argument("--seconds", type=float, default=None, help="fanout, wall, scale: measured seconds")
    p.add_argument("--backend", default=None, choices=("postgresql", "sqlite", "both"), help="desk_pages")
    args = p.parse_args(argv)
    rev = subprocess.run(["git", "rev-parse", "--short", args.rev], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()  # fmt: skip
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    before, after = rev, head + ("+changes" if dirty else "")
    for line in machine_lines():
        console.print(line, highlight=False)
    with tempfile.TemporaryDirectory(prefix="gw-compare-") as tmp:
        old = Path(tmp) / rev
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(old), rev], cwd=ROOT, check=True)
        try:
            for name in args.names:
                rows: list[Row] = []
                kw = kwargs_for(name, args.seconds, args.backend)
                for rnd in range(1, args.rounds + 1):
                    order = [(old, before), (ROOT, after)]
                    for tree, label in order if rnd % 2 else order[::-1]:
                        rows += run_once(tree, label, rnd, name, kw)
                console.print(table(name, rows, before, after))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
