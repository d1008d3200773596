"""The served OpenAPI document against the live server, property-based (schemathesis + hypothesis).

Schemathesis reads ``/api/v1/openapi.json`` from a real server on a real port (SQLite city) and
generates requests for every operation, valid and invalid, with an API key of role ``admin`` (it may
send positions and report; its lifecycle commands are refused with 403, as documented). Every answer
must be no 5xx, a documented status code, the documented content type and match the documented
schema. A few dozen examples per operation keep it well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.engine import Engine

from feeds.api import API_PREFIX
from feeds.openapi import openapi_document
from store.accounts import issue_token
from store.db import transaction
from tests.live_server import LiveServer, start_live_server

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def city_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """The built district on SQLite only (the storage is tested by test_api and test_open311)."""
    from domain.catalogue import load_catalogue
    from store.build import BuildRequest, build_city
    from store.cases import sync_departments
    from store.db import create_engine

    tmp = request.getfixturevalue("tmp_path_factory").mktemp("openapi")
    eng = create_engine(f"sqlite:///{tmp / 'gw.db'}")
    build_city(eng, BuildRequest())
    with transaction(eng) as s:
        sync_departments(s, load_catalogue("cjt214"))
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def server(city_engine: Engine) -> Iterator[LiveServer]:
    srv = start_live_server(city_engine, interval=0.5)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def admin_key(server: LiveServer) -> str:
    with transaction(server.engine) as s:
        return issue_token(s, "api", "openapi property test", role="admin")[1]


def test_the_served_document_is_the_built_one(server: LiveServer) -> None:
    served = requests.get(f"{server.url}{API_PREFIX}/openapi.json", timeout=30).json()
    assert served == openapi_document()
    ops = {(m, p) for p, item in served["paths"].items() for m in item}
    assert ("post", f"{API_PREFIX}/positions") in ops and ("post", "/open311/v2/requests.{fmt}") in ops


def test_every_operation_answers_as_documented(server: LiveServer, admin_key: str) -> None:
    """Hypothesis strategies from each operation of the served document (schemathesis' pytest plugin
    does not run under pytest 9, so the operations are driven here)."""
    served = requests.get(f"{server.url}{API_PREFIX}/openapi.json", timeout=30).json()
    api = schemathesis.openapi.from_dict(served)
    headers = {"Authorization": f"Bearer {admin_key}"}
    seen: dict[str, set[int]] = {}
    operations = [op.ok() for op in api.get_all_operations()]  # type: ignore[union-attr]  # Err raises
    assert len(operations) == sum(len(item) for item in served["paths"].values()) == 18
    for op in operations:
        raw = served["paths"][op.path][op.method.lower()]
        invalid = "parameters" in raw or "requestBody" in raw  # else nothing can be made invalid
        for mode in (
            (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if invalid else (GenerationMode.POSITIVE,)
        ):
            _property(op, mode, server.url, headers, seen)()
    assert len(seen) == len(operations)
    assert {200, 400, 404, 422} <= set().union(*seen.values())  # answers of several kinds were checked


def _property(
    op: Any, mode: GenerationMode, base_url: str, headers: dict[str, str], seen: dict[str, set[int]]
) -> Any:
    """The hypothesis test of one operation: requests valid (positive) or invalid (negative) by its schema."""

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def answers(case: schemathesis.Case) -> None:
        # a safety cap, not a wait: beside the fuzz and a busy loop (load 11 on 2 cores) one call took > 30 s
        response = case.call(base_url=base_url, headers=headers, timeout=120)
        seen.setdefault(op.label, set()).add(response.status_code)
        case.validate_response(response, checks=CHECKS)

    return answers
