"""The first page in real (Debian) Chromium: renders the district offline, with no page errors."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from tests.serve import ROOT, Server, run_app

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_app(tmp_path_factory.mktemp("browser"), timeout=90) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser: object, url: str, width: int, height: int) -> tuple[object, list[str], list[str]]:
    page = browser.new_page(viewport={"width": width, "height": height})  # type: ignore[attr-defined]
    errors: list[str] = []
    external: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)

    def on_request(req: object) -> None:
        host = urlparse(req.url).hostname  # type: ignore[attr-defined]
        if host not in ("127.0.0.1", "localhost", None) and not req.url.startswith("data:"):  # type: ignore[attr-defined]
            external.append(req.url)  # type: ignore[attr-defined]

    page.on("request", on_request)
    page.goto(url, wait_until="networkidle")
    return page, errors, external


@pytest.mark.parametrize(
    ("which", "size"), [("desk", (1600, 900)), ("wall", (1920, 1080)), ("wall", (3840, 1080))]
)
def test_overview_renders_offline(server: Server, browser: object, which: str, size: tuple[int, int]) -> None:
    url = server.wall_url if which == "wall" else server.desk_url
    page, errors, external = _open(browser, url, *size)
    page.wait_for_selector(".gw-map .maplibregl-canvas", timeout=30_000)  # type: ignore[attr-defined]
    page.wait_for_timeout(2500)  # type: ignore[attr-defined]
    # counts and street list come from the store
    counts = page.inner_text(".gw-counts")  # type: ignore[attr-defined]
    assert "单元网格" in counts and "街道" in counts
    streets = page.locator(".gw-street")  # type: ignore[attr-defined]
    assert streets.count() == 17
    # the grid layer was fetched from our server and drawn by plotly
    n_paths = page.evaluate(  # type: ignore[attr-defined]
        "() => { const gd = document.querySelector('.gw-map .js-plotly-plot');"
        " return gd && gd.data ? gd.data[0].locations.length : 0; }"
    )
    assert n_paths > 4000
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"overview-{which}-{size[0]}x{size[1]}.png"))  # type: ignore[attr-defined]
    assert not external, f"requests left the server: {external[:5]}"
    real_errors = [e for e in errors if "GPU stall" not in e and "WebGL" not in e]
    assert not real_errors, real_errors
    if which == "wall":
        overflow = page.evaluate(  # type: ignore[attr-defined]
            "() => { const d = document.documentElement;"
            " return [d.scrollWidth > innerWidth, d.scrollHeight > innerHeight]; }"
        )
        assert overflow == [False, False], "the wall must not scroll"
    page.close()  # type: ignore[attr-defined]
