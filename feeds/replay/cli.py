"""``python app.py replay geolife|311 …``: options, plan building and the summary (app.py wires it)."""

from __future__ import annotations

import argparse
import os
import string
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from feeds.replay.base import MAPPINGS, ReplayError

if TYPE_CHECKING:
    from feeds.replay.sender import Plan

DEFAULT_URL = "http://127.0.0.1:8050"
_B36 = string.digits + string.ascii_lowercase


def shared_data(root: Path) -> Path:
    """The shared data folder: ``$GW_SHARED_DIR/data`` or ``../shared/data`` next to the program."""
    return Path(os.environ.get("GW_SHARED_DIR") or (root.parent / "shared")) / "data"


def run_tag(now: float | None = None) -> str:
    """A 4-character tag for this run's case ids (base 36 of the second, repeats after 19 days): a re-run
    makes new cases rather than colliding with the earlier run's idempotency keys."""
    n = int(time.time() if now is None else now) % 36**4
    return "".join(_B36[(n // 36**i) % 36] for i in (3, 2, 1, 0))


def add_arguments(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> argparse.ArgumentParser:
    """The ``replay`` command and its two sources."""
    rep = sub.add_parser(
        "replay", help="replay real data (GeoLife traces, US 311 requests) into a running GridWall"
    )
    src = rep.add_subparsers(dest="source", required=True, metavar="{geolife,311}")
    conn = argparse.ArgumentParser(add_help=False)
    conn.add_argument("--url", default=DEFAULT_URL, help=f"the running GridWall (default {DEFAULT_URL})")
    conn.add_argument(
        "--token",
        help="a gateway token of a replay (see --setup-only); without it the replay's people and token "
        "are created in the database of --data-dir/--db",
    )
    conn.add_argument(
        "--setup-only", action="store_true", help="create the people and the token, print the token, stop"
    )
    conn.add_argument("--connections", type=int, default=4, help="Socket.IO connections (default 4)")
    conn.add_argument("--window", type=int, default=256, help="events in flight at most (default 256)")
    conn.add_argument("--shared", help="the shared data folder (default $GW_SHARED_DIR/data, ../shared/data)")
    geo = src.add_parser("geolife", parents=[common, conn], help="GeoLife GPS trajectories as supervisors")
    geo.add_argument("--dir", help="the GeoLife folder (default <shared>/trajectories/geolife)")
    geo.add_argument("--users", help="user folders, comma separated (e.g. 000,003)")
    geo.add_argument("--glob", help="a pattern on the file path, e.g. 'Data/000/Trajectory/2008*.plt'")
    geo.add_argument("--limit", type=int, help="at most this many trajectories (after the other filters)")
    geo.add_argument(
        "--bbox",
        help="west,south,east,north (WGS-84): keep trajectories with points in it (default: Dongcheng, "
        "as index.csv counts them); only a pre-filter, the pipeline rejects what is outside the grids",
    )
    geo.add_argument("--speed", default="60", help="1-600 (times real time) or max (default 60)")
    r311 = src.add_parser("311", parents=[common, conn], help="US 311 service requests as cases")
    r311.add_argument("--mapping", default="la", help=f"{', '.join(MAPPINGS)} or a TOML file (default la)")
    r311.add_argument("--file", help="the CSV (default: the mapping's file under <shared>)")
    r311.add_argument("--rows", type=int, help="only the first N rows of the file")
    r311.add_argument(
        "--as-of",
        help="replay the city as it was at T (ISO 8601; without a zone: the mapping's zone): nothing after T "
        "is sent, T lands at now, cases open at T stay open and their timers run from there",
    )
    r311.add_argument("--speed", default="max", help="1-600 (times real time) or max (default max)")
    r311.add_argument("--tag", help="the run tag in case ids (default: from the clock, 4 characters)")
    return rep


def build_plan(
    args: argparse.Namespace, root: Path, start: datetime | None = None
) -> tuple[Plan, float | None]:
    """The plan and speed of a ``replay`` command line."""
    from feeds.replay.geolife import DONGCHENG_BBOX, load_tracks, plan_geolife, select_files
    from feeds.replay.r311 import load_mapping, plan_311, read_rows
    from feeds.replay.sender import parse_speed

    now = start or datetime.now(UTC)
    data = Path(args.shared) if getattr(args, "shared", None) else shared_data(root)
    if args.source == "geolife":
        speed = parse_speed(args.speed, default=60.0)
        folder = Path(args.dir) if args.dir else data / "trajectories" / "geolife"
        if not folder.is_dir():
            raise ReplayError(f"no GeoLife folder {folder} (use --dir or --shared)")
        users = args.users.split(",") if args.users else None
        bbox = DONGCHENG_BBOX
        if args.bbox:
            try:
                w, s, e, n = (float(v) for v in args.bbox.split(","))
            except ValueError:
                raise ReplayError(f"--bbox {args.bbox!r}: four numbers west,south,east,north") from None
            bbox = (w, s, e, n)
        files = select_files(folder, users=users, pattern=args.glob, limit=args.limit, bbox=bbox)
        tracks = load_tracks(folder, files)
        return plan_geolife(tracks, start=now, speed=speed), speed
    speed = parse_speed(args.speed, default=None)
    m = load_mapping(args.mapping)
    path = Path(args.file) if args.file else data / m.file
    if not path.is_file():
        raise ReplayError(f"no file {path} for mapping {m.name} (use --file or --shared)")
    as_of = None
    if args.as_of:
        try:
            as_of = datetime.fromisoformat(args.as_of)
        except ValueError:
            raise ReplayError(f"--as-of {args.as_of!r}: an ISO 8601 instant, e.g. 2020-01-02T12:00") from None
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=m.zone)
        as_of = as_of.astimezone(UTC)
    if args.rows is not None and args.rows < 1:
        raise ReplayError("--rows must be at least 1")
    rows = read_rows(m, path, limit=args.rows)
    tag = args.tag if args.tag is not None else run_tag()
    if not all(c.isalnum() for c in tag) or len(tag) > 6:
        raise ReplayError(f"--tag {tag!r}: up to 6 letters or digits")
    return plan_311(m, rows, start=now, speed=speed, as_of=as_of, tag=tag), speed
