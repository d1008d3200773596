"""docs/architecture.md stays honest: every module, object and path it names in backticks exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("gridwall", "domain", "store", "feeds", "dashboard", "layouts")
DOTTED = re.compile(r"^(?:" + "|".join(PACKAGES) + r")(?:\.[A-Za-z_][A-Za-z0-9_]*)+$")
PATH = re.compile(r"^[\w./-]+(?:\.py|\.md|/)$")


def cited() -> list[str]:
    """Every backticked name of the page."""
    return re.findall(r"`([^`\n]+)`", DOC.read_text(encoding="utf-8"))


def resolve(name: str) -> object:
    """Import the longest module prefix of a dotted name, then follow attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(name)


def test_the_page_cites_enough_to_be_checked() -> None:
    names = cited()
    assert sum(bool(DOTTED.match(n)) for n in names) >= 20
    assert sum(bool(PATH.match(n)) for n in names) >= 5


@pytest.mark.parametrize("name", sorted({n for n in cited() if DOTTED.match(n)}))
def test_every_cited_name_exists(name: str) -> None:
    try:
        resolve(name)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"docs/architecture.md names `{name}`, which does not exist: {exc}")


@pytest.mark.parametrize("path", sorted({n for n in cited() if PATH.match(n)}))
def test_every_cited_path_exists(path: str) -> None:
    assert (ROOT / path).exists(), f"docs/architecture.md names {path}, which does not exist"


def test_a_name_that_does_not_exist_is_caught() -> None:
    with pytest.raises(AttributeError):
        resolve("gridwall.runtime.no_such_builder")
    with pytest.raises(AttributeError):
        resolve("feeds.no_such_module")
