"""GeoLife GPS trajectories (PLT files, WGS-84, UTC) → supervisors' ``positions`` through ``/device``.

Each *trajectory* (one PLT file) becomes one supervisor, ``gl-<user>-<file stem>`` (people source
``replay``, no responsibility area), so that trajectories of one user recorded years apart never
meet in one track. Every trajectory starts when the replay starts: its instants keep their real
spacing and are shifted so that its last fix lands when its playback ends (at ``--speed 1`` the
first fix is now; at ``S``× the playback takes span/S and the earlier fixes are in the recent past),
so no fix is ever ahead of the server's clock. Fixes are sent in ``positions`` batches (≤ 500) of
the fixes due in the same second, supervisors sharded over the connections, one batch per
connection in flight.

Files: by default every trajectory of ``index.csv`` that has points in the district (the data's
own pre-filter; without an index, every PLT file with a point in ``--bbox``). ``--users``,
``--glob`` and ``--limit`` narrow the choice. Nothing is filtered here by place: the pipeline
rejects fixes outside the district's grids by name (``outside_district``, capped dead-letter), and
GPS jumps (``impossible_speed``), repeated instants (``duplicate``) and fixes older than the
retention (``too_old``) likewise.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from feeds.replay.base import ReplayError
from feeds.replay.sender import PersonSpec, Plan, Send, time_shift

BATCH = 500
CONNECTION_SHARDS = 4  # lanes: supervisors are spread over this many (one batch per lane in flight)
DONGCHENG_BBOX = (116.37230, 39.85659, 116.44470, 39.97267)  # west, south, east, north (WGS-84)


@dataclass(frozen=True)
class Track:
    """One trajectory: its supervisor id and its fixes (UTC instants in µs, lon, lat)."""

    file: str  # relative to the GeoLife folder
    user: str
    supervisor: str
    at_us: np.ndarray
    lon: np.ndarray
    lat: np.ndarray

    @property
    def start(self) -> datetime:
        """The first instant."""
        return datetime.fromtimestamp(int(self.at_us[0]) / 1e6, UTC)

    @property
    def end(self) -> datetime:
        """The last instant."""
        return datetime.fromtimestamp(int(self.at_us[-1]) / 1e6, UTC)


def supervisor_id(rel: str) -> str:
    """``Data/000/Trajectory/20081026134407.plt`` → ``gl-000-20081026134407``."""
    parts = Path(rel).parts
    user = parts[-3] if len(parts) >= 3 else "x"
    return f"gl-{user}-{Path(rel).stem}"[:64]


def read_plt(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A PLT file's fixes: instants (µs since 1970, UTC, from the date and time columns), lon, lat.

    Six header lines, then ``lat,lon,0,altitude_ft,days_since_1899-12-30,date,time``."""
    try:
        df = pd.read_csv(
            path, skiprows=6, header=None, usecols=[0, 1, 5, 6], names=["lat", "lon", "date", "time"],
            dtype={"date": str, "time": str},
        )  # fmt: skip
    except (OSError, pd.errors.ParserError, ValueError) as exc:
        raise ReplayError(f"{path}: {exc}") from None
    at = pd.to_datetime(df["date"] + " " + df["time"], errors="coerce", format="%Y-%m-%d %H:%M:%S", utc=True)
    lon = pd.to_numeric(df["lon"], errors="coerce").to_numpy(float)
    lat = pd.to_numeric(df["lat"], errors="coerce").to_numpy(float)
    ok = at.notna().to_numpy() & np.isfinite(lon) & np.isfinite(lat)
    us = at[ok].dt.tz_localize(None).to_numpy(dtype="datetime64[us]").astype(np.int64)  # any unit → µs
    return us, lon[ok], lat[ok]


def select_files(
    root: Path,
    *,
    users: list[str] | None = None,
    pattern: str | None = None,
    limit: int | None = None,
    bbox: tuple[float, float, float, float] = DONGCHENG_BBOX,
) -> list[str]:
    """Trajectory files (relative to ``root``) to replay, sorted; see the module doc."""
    index = root / "index.csv"
    if index.is_file():
        idx = pd.read_csv(index, dtype={"user": str, "file": str})
        if "n_points_in_dongcheng" in idx.columns and bbox == DONGCHENG_BBOX:
            idx = idx[idx["n_points_in_dongcheng"] > 0]
        else:  # the index's bounding boxes overlap the given one
            w, s, e, n = bbox
            idx = idx[(idx.min_lon <= e) & (idx.max_lon >= w) & (idx.min_lat <= n) & (idx.max_lat >= s)]
        files = sorted(str(f) for f in idx["file"])
    else:
        files = []
        for p in sorted(root.rglob("*.plt")):
            _, lon, lat = read_plt(p)
            w, s, e, n = bbox
            if np.any((lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)):
                files.append(p.relative_to(root).as_posix())
    if users:
        wanted = {u.strip() for u in users if u.strip()}
        files = [f for f in files if len(Path(f).parts) >= 3 and Path(f).parts[-3] in wanted]
    if pattern:
        files = [f for f in files if fnmatch.fnmatch(f, pattern)]
    if limit is not None:
        files = files[: max(0, limit)]
    if not files:
        raise ReplayError(f"no GeoLife trajectory in {root} matches the options")
    return files


def load_tracks(root: Path, files: list[str]) -> list[Track]:
    """Read the chosen files (empty ones are left out)."""
    out = []
    for rel in files:
        us, lon, lat = read_plt(root / rel)
        if len(us):
            parts = Path(rel).parts
            out.append(Track(rel, parts[-3] if len(parts) >= 3 else "", supervisor_id(rel), us, lon, lat))
    return out


def plan_geolife(
    tracks: list[Track], *, start: datetime, speed: float | None, shards: int = CONNECTION_SHARDS
) -> Plan:
    """``positions`` batches of every track, all tracks starting together (see the module doc)."""
    if not tracks:
        raise ReplayError("no GeoLife fixes to replay")
    sups, ats, dues, lons, lats, lanes = [], [], [], [], [], []
    start_us = int(start.timestamp() * 1_000_000)
    shifts = {}
    for k, t in enumerate(tracks):
        shift = time_shift(t.start, t.end, start, speed)
        shift = timedelta(milliseconds=round(shift / timedelta(milliseconds=1)))  # fixes go in epoch ms
        shifts[t.supervisor] = shift
        rel = (t.at_us - t.at_us[0]).astype(np.float64) / 1e6  # seconds from the track's first fix
        dues.append(rel)
        ats.append(t.at_us + int(shift / timedelta(microseconds=1)))
        lons.append(t.lon)
        lats.append(t.lat)
        sups.append(np.full(len(t.at_us), k, dtype=np.int64))
        lanes.append(np.full(len(t.at_us), k % shards, dtype=np.int64))
    due = np.concatenate(dues)
    at = np.concatenate(ats)
    lon, lat = np.concatenate(lons), np.concatenate(lats)
    sup, lane = np.concatenate(sups), np.concatenate(lanes)
    order = np.lexsort((at, due)) if speed is not None else np.lexsort((at, sup))
    tick = np.floor(due / speed).astype(np.int64) if speed is not None else np.zeros(len(due), np.int64)
    names = [t.supervisor for t in tracks]
    events: list[tuple[float, int, Send]] = []
    open_batch: dict[int, tuple[int, list[dict[str, object]]]] = {}  # lane → (tick, fixes)

    def flush(ln: int) -> None:
        t_k, fixes = open_batch.pop(ln)
        due_s = float(t_k) * (speed or 0.0)  # the batch goes at its second (divided by the speed)
        events.append((due_s, len(events), Send(due_s, f"lane-{ln}", "positions", {"fixes": fixes}, "fixes",
                                                len(fixes))))  # fmt: skip

    for i in order.tolist():
        ln = int(lane[i])
        cur = open_batch.get(ln)
        if cur is not None and (cur[0] != tick[i] or len(cur[1]) >= BATCH):
            flush(ln)
            cur = None
        if cur is None:
            cur = open_batch[ln] = (int(tick[i]), [])
        cur[1].append({"supervisor": names[int(sup[i])], "at": int(at[i]) // 1000,
                       "lon": float(lon[i]), "lat": float(lat[i])})  # fmt: skip
    for ln in list(open_batch):
        flush(ln)
    events.sort(key=lambda e: (e[0], e[1]))
    people = [PersonSpec(t.supervisor, "supervisor", f"GeoLife {t.user} {t.start:%Y-%m-%d %H:%M} (replay)")
              for t in tracks]  # fmt: skip
    first = min(t.start for t in tracks)
    return Plan(
        name="geolife",
        token_name="replay:geolife",
        people=people,
        events=[e for _, _, e in events],
        shift=min(shifts.values()),
        not_sent={},
        info={"tracks": len(tracks), "fixes": len(due), "first": first, "start_us": start_us,
              "shifts": shifts, "seconds": float(due.max() / speed) if speed else 0.0},
    )


def fixes_per_track(tracks: list[Track]) -> Counter[str]:
    """How many fixes each supervisor's track has."""
    return Counter({t.supervisor: len(t.at_us) for t in tracks})
