"""The staff roster of unit grids (the seed's 七员进网格): import from CSV, replacing a grid's roster.

An administrator's import, like ``python app.py import levels``: not a feed input, so not through the
feed pipeline; the whole file is checked first and nothing is written when any row is bad.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine

from domain.errors import RosterError
from store.models import Grid, GridStaff

# the seven forces of a unit grid (the seed's 七员进网格), roster column ``duty``
DUTIES = ("manager", "assistant", "police", "supervisor", "party", "legal", "fire")
DUTY_ALIASES = {
    "网格管理员": "manager",
    "网格助理员": "assistant",
    "网格警员": "police",
    "网格督导员": "supervisor",
    "网格党支部书记": "party",
    "网格司法工作者": "legal",
    "网格消防员": "fire",
}


def import_roster(engine: Engine, path: Path) -> int:
    """Replace the staff rosters of the grids named in a CSV (``grid,duty,name,phone``).

    Every bad row is named (line number and reason) and nothing is written when any row is bad.
    ``duty`` is one of ``DUTIES`` or its Chinese title (网格管理员 …).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RosterError(f"{path}: cannot read: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    need = {"grid", "duty", "name"}
    if reader.fieldnames is None or not need <= {f.strip() for f in reader.fieldnames}:
        raise RosterError(f"{path}: the header must have columns grid,duty,name[,phone]")
    with engine.connect() as conn:
        known = set(conn.scalars(select(Grid.code).where(Grid.active)))
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    now = datetime.now(UTC)
    for n, raw in enumerate(reader, start=2):
        rec = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
        grid, duty, name = rec.get("grid", ""), rec.get("duty", ""), rec.get("name", "")
        phone = rec.get("phone", "")
        duty = DUTY_ALIASES.get(duty, duty)
        if grid not in known:
            errors.append(f"line {n}: unknown_grid {grid!r}")
        elif duty not in DUTIES:
            errors.append(f"line {n}: unknown_duty {rec.get('duty', '')!r} (use {', '.join(DUTIES)})")
        elif not name or len(name) > 64:
            errors.append(f"line {n}: bad_name (1 to 64 characters)")
        elif len(phone) > 32:
            errors.append(f"line {n}: bad_phone (at most 32 characters)")
        else:
            rows.append({"grid_code": grid, "duty": duty, "name": name, "phone": phone, "imported_at": now})
    if errors:
        more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
        raise RosterError(f"{path}: {len(errors)} bad rows: " + "; ".join(errors[:20]) + more)
    grids = sorted({r["grid_code"] for r in rows})
    with engine.begin() as conn:
        for i in range(0, len(grids), 500):
            conn.execute(delete(GridStaff).where(GridStaff.grid_code.in_(grids[i : i + 500])))
        if rows:
            conn.execute(insert(GridStaff), rows)
    return len(rows)
