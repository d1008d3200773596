"""Start ``python app.py run`` as a real subprocess on a free loopback port (stdin closed)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running GridWall process and what it printed."""

    base: str
    wall_url: str
    desk_url: str
    proc: subprocess.Popen[str]
    lines: list[str]
    cwd: Path


@contextmanager
def run_app(cwd: Path, *extra: str, timeout: float = 60.0, port: int | None = None) -> Iterator[Server]:
    """Run ``app.py run`` from ``cwd`` with stdin closed; yield once the printed URLs answer."""
    port = port or free_port()
    cmd = [sys.executable, str(ROOT / "app.py"), "run", "--port", str(port), *extra]
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    wall = desk = None
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        while time.monotonic() < deadline and (wall is None or desk is None):
            line = proc.stdout.readline()
            if not line:
                if proc.poll() is not None:
                    break
                continue
            lines.append(line.rstrip())
            if m := re.match(r"wall: (http://\S+)", line):
                wall = m.group(1)
            if m := re.match(r"desk: (http://\S+)", line):
                desk = m.group(1)
        if wall is None or desk is None:
            raise AssertionError("app did not print its URLs:\n" + "\n".join(lines))
        base = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                if requests.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:  # gunicorn listens before its worker has built the app
                time.sleep(0.2)
        else:
            raise AssertionError("app never answered /healthz:\n" + "\n".join(lines))
        yield Server(base=base, wall_url=wall, desk_url=desk, proc=proc, lines=lines, cwd=cwd)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:  # what it printed after its URLs, up to its exit
            lines.extend(line.rstrip() for line in proc.stdout.read().splitlines())
