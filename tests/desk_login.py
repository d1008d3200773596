"""Log in to the desk from tests: over HTTP (a ``requests.Session``) or in a Playwright page.

People are added with :func:`add_desk_user` (in process, on an engine) or :func:`add_user_cli`
(``python app.py user add … --password-stdin`` against a server's data folder, for ``tests.serve``).
The HTTP client carries the session cookie and sends the session's CSRF token in ``X-CSRF-Token``
on every request, so ``client.post(base + "/api/v1/commands", json=…)`` just works.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from sqlalchemy.engine import Engine

from store.accounts import add_person
from store.db import transaction

ROOT = Path(__file__).resolve().parents[1]
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def add_desk_user(engine: Engine, user: str, password: str, role: str = "leader", **kw: Any) -> None:
    """Add a person who may log in to the desk (in process; ``kw``: name, department, area)."""
    with transaction(engine) as s:
        add_person(s, user, role, password=password, **kw)


def add_user_cli(cwd: Path, user: str, password: str, role: str = "leader", *extra: str) -> None:
    """Add a person with ``python app.py user add`` run in a server's folder (``tests.serve.Server.cwd``:
    the same default data folder, ``./var``); ``extra``: more options such as ``--department D``."""
    cmd = [
        sys.executable,
        str(ROOT / "app.py"),
        "user",
        "add",
        user,
        "--role",
        role,
        "--password-stdin",
        *extra,
    ]
    done = subprocess.run(cmd, input=password + "\n", text=True, capture_output=True, timeout=120, cwd=cwd)
    if done.returncode != 0:
        raise AssertionError(f"user add failed: {done.stdout}{done.stderr}")


def login_form(client: requests.Session, base_url: str) -> str:
    """GET /login and return the form's CSRF token (the nonce cookie stays in the client)."""
    r = client.get(f"{base_url}/login", timeout=10)
    r.raise_for_status()
    m = CSRF_RE.search(r.text)
    if m is None:
        raise AssertionError("the login form has no csrf field")
    return m.group(1)


def login_http(base_url: str, user: str, password: str) -> requests.Session:
    """A ``requests.Session`` logged in as ``user`` (AssertionError when the login is refused)."""
    client = requests.Session()
    token = login_form(client, base_url)
    r = client.post(
        f"{base_url}/login",
        data={"user": user, "password": password, "csrf": token, "next": "/desk"},
        allow_redirects=False,
        timeout=10,
    )
    if r.status_code != 303:
        raise AssertionError(f"login refused ({r.status_code})")
    me = client.get(f"{base_url}/auth/session", timeout=10)
    me.raise_for_status()
    client.headers["X-CSRF-Token"] = me.json()["csrf"]
    return client


def login_browser(page: Any, base_url: str, user: str, password: str, next_path: str = "/desk") -> None:
    """Log a Playwright page in through the form and wait until it lands on ``next_path``."""
    page.goto(f"{base_url}/login?next={quote(next_path, safe='/')}")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    path = next_path.split("?")[0]
    if not page.url.split("?")[0].endswith(path):
        raise AssertionError(f"login did not land on {next_path}: {page.url}")
