"""The run contract: ``python app.py run`` from any folder, stdin closed, serving (the 30 s of the
live-core issue is measured by ``python -m bench startup``, not here: no timed unit tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests
from sqlalchemy import func, select

from store.accounts import ADMIN_PASSWORD_FILE
from store.db import create_engine
from store.models import Case
from tests.desk_login import login_http
from tests.serve import ROOT, Server, free_port, run_app


def test_help_and_one_line_errors(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--help"], capture_output=True, text=True, check=True
    )
    for word in ("run", "init", "import"):
        assert word in out.stdout
    bad = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "init", "--district", "999999", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1, bad.stderr
    assert lines[0].startswith("error: district 999999")
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    bad = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "init", "--streets", str(broken), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"error: {broken}: malformed GeoJSON: Expecting value at line 1"
    ]


def _killed_while_backfilling(cwd: Path, port: int) -> list[str]:
    """Start ``app.py run`` on an empty folder and ``kill -9`` it once it says it is backfilling."""
    cmd = [sys.executable, str(ROOT / "app.py"), "run", "--port", str(port)]
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if "backfilling" in line:
                break
    finally:
        proc.kill()  # SIGKILL: no clean-up runs
        proc.wait(timeout=20)
    assert any("backfilling" in line for line in lines), lines
    return lines


def test_run_from_empty_folder_killed_during_its_backfill_then_builds_serves_and_restarts(
    tmp_path: Path,
) -> None:
    """From an empty folder: a first start ``kill -9``-ed while backfilling; the next start completes
    the backfill, prints the admin password once and serves (the production server, the kiosk token,
    the desk's login, the offline map's files); restarts reuse the database and the token, show the
    password until the admin logs in, then never again. (One test: each first start costs half a
    minute of the suite; the uninterrupted first start is the browser tests' ``app_server``.)"""
    first = _killed_while_backfilling(tmp_path, free_port())
    assert not any(line.startswith("admin:") for line in first)  # killed before it could print it
    engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'gridwall.db'}")
    try:
        with run_app(tmp_path, timeout=600) as srv:
            assert any("completing it" in line for line in srv.lines), srv.lines
            shown = [line for line in srv.lines if line.startswith("admin: user admin, password ")]
            assert len(shown) == 1, srv.lines
            password = shown[0].split("password ", 1)[1].split(" ", 1)[0]
            with engine.connect() as conn:  # the week of simulated cases and today's patrols are there
                cases = conn.scalar(select(func.count()).select_from(Case).where(Case.origin == "simulation"))
            assert (cases or 0) > 1000
            _serves(srv)
        # the production server (gunicorn), not Werkzeug's development server; stopped by SIGTERM in time
        assert not any("development server" in line for line in srv.lines), srv.lines
        assert srv.proc.returncode == 0, srv.lines
        first_token = srv.wall_url.split("token=")[1]
        # not logged in yet: shown again; the database and the kiosk token are reused (the restarts
        # run without the simulation: regenerating its week to skip what is stored is half a restart)
        with run_app(tmp_path, "--no-simulation", timeout=120) as srv:
            assert any(line == shown[0] for line in srv.lines), srv.lines
            assert not any("backfill" in line or "first start" in line for line in srv.lines), srv.lines
            assert srv.wall_url.split("token=")[1] == first_token
            login_http(srv.base, "admin", password)
        # the admin has logged in: the password is no longer printed, nor kept
        with run_app(tmp_path, "--no-simulation", timeout=120) as srv:
            assert not any(line.startswith("admin:") for line in srv.lines), srv.lines
        assert not (tmp_path / "var" / ADMIN_PASSWORD_FILE).exists()
    finally:
        engine.dispose()


def _serves(srv: Server) -> None:
    """What a started GridWall answers: health, the desk's login, the kiosk-token wall, the map's files."""
    assert (srv.cwd / "var" / "gridwall.db").exists()
    assert srv.wall_url.startswith(f"{srv.base}/wall?token=")
    assert srv.desk_url == f"{srv.base}/desk"
    health = requests.get(srv.base + "/healthz", timeout=5).json()
    assert health["district"] == "110101"
    assert health["grids"] > 4000
    page = requests.get(srv.desk_url, timeout=5, allow_redirects=False)  # the desk needs a login
    assert page.status_code == 302 and page.headers["location"].startswith("/login?next=")
    login = requests.get(srv.base + page.headers["location"], timeout=5)
    assert login.status_code == 200 and 'name="password"' in login.text
    # the wall needs the kiosk token
    assert requests.get(srv.base + "/wall", timeout=5).status_code == 403
    assert requests.get(srv.base + "/wall?token=wrong", timeout=5).status_code == 403
    assert requests.get(srv.wall_url, timeout=5).status_code == 200
    grids = requests.get(srv.base + "/geo/110101/grids.geojson", timeout=10).json()
    assert len(grids["features"]) == health["grids"]
    assert all(len(f["id"]) == 15 and f["id"].startswith("110101") for f in grids["features"])
    labels = requests.get(srv.base + "/geo/110101/labels.png", timeout=10)
    assert labels.headers["content-type"] == "image/png"
    assert requests.get(srv.base + "/basemap/style.json", timeout=5).status_code == 401  # who is asking?
    style = requests.get(srv.wall_url.replace("/wall?", "/basemap/style.json?"), timeout=5).json()
    assert style["version"] == 8 and style["layers"][0]["type"] == "background"
    assert all(not str(s.get("tiles", "")).startswith(("https://", "//")) for s in style["sources"].values())
