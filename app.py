"""GridWall: composition root and command line (``run`` is the default command).

python app.py run [--host 127.0.0.1] [--port 8050] [--data-dir ./var]
python app.py init [--district ADCODE] [--streets FILE] [--communities FILE] [--grids FILE] [--crs CRS]
                   [--roads FILE [--roads-crs CRS] | --no-roads]
python app.py import streets|communities|grids|levels|roster FILE [--crs CRS]
python app.py import addresses FILE [--crs CRS] [--columns address=…,lon=…,lat=…]
python app.py import components FILE [--crs CRS] [--columns id=…,lon=…,lat=…] [--retire-missing]
python app.py simulate [--days 30] [--start YYYY-MM-DD] [--seed 1]
python app.py user add ID --role ROLE [--name N] [--department CODE] [--area CODE] [--password-stdin]
python app.py user list | user password ID [--password-stdin]
python app.py token add device|gateway|kiosk|api --name N [--person ID] [--role R] [--scope IDS|*]
python app.py token list | token revoke ID
python app.py replay geolife|311 [--url URL] [--token T] …   (docs/replay.md)
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # shipped packages are found next to this file, from any folder
    sys.path.insert(0, str(HERE))

from gridwall.settings import THREADS, Settings, load_secrets  # noqa: E402  (after the path above)
from gridwall.settings import settings_from as _settings_from  # noqa: E402

COMMANDS = ("run", "init", "import", "simulate", "user", "token", "replay")


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the command line and the environment (GW_DATA_DIR, GW_DB_URL, GW_FEEDBACK_REVIEW, …)."""
    return _settings_from(
        args.data_dir, args.db, feedback_review=getattr(args, "feedback_review", None),
        acceptor_check=getattr(args, "acceptor_check", None),
    )  # fmt: skip


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar fed by ``(stage, done, total)`` callbacks (quiet when not a terminal)."""
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    labels = {
        "streets": "streets",
        "communities": "communities",
        "grids": "unit grids",
        "areas": "responsibility areas",
        "store": "writing",
    }
    with Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        transient=False,
        disable=not sys.stderr.isatty(),
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(labels.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def cmd_init(args: argparse.Namespace) -> int:
    """Build a district's geography into the database."""
    from store.build import BuildRequest, build_city
    from store.db import create_engine

    st = settings_from(args)
    engine = create_engine(st.db_url)
    req = BuildRequest(
        district=args.district,
        streets=Path(args.streets) if args.streets else None,
        communities=Path(args.communities) if args.communities else None,
        grids=Path(args.grids) if args.grids else None,
        crs=args.crs,
        area_size=args.area_size,
        regenerate=getattr(args, "regenerate", False),
        roads=_roads_path(args.roads, st.data_dir) if getattr(args, "roads", None) else None,
        roads_crs=getattr(args, "roads_crs", None),
        no_roads=getattr(args, "no_roads", False),
        data_dir=st.data_dir,
    )
    with progress_bar() as update:
        summary = build_city(engine, req, update)
    print(
        f"built: {summary.streets} streets, {summary.communities} communities, {summary.grids} unit grids "
        f"({summary.grids_new} new, {summary.grids_kept} kept, {summary.grids_retired} retired), "
        f"{summary.areas} responsibility areas -> {st.db_url}",
        flush=True,
    )
    if summary.grid_areas is not None:  # issue 17: the area distribution of the grids, by layout
        print(f"unit grids ({summary.layout.value}): {summary.grid_areas.line()}", flush=True)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Import streets, communities or surveyed grids into the built district, or grid levels."""
    if args.kind == "basemap":
        return _import_basemap(args)
    if args.kind == "addresses":
        return _import_addresses(args)
    if args.kind == "components":
        return _import_components(args)
    if args.kind == "roster":
        from store.roster import import_roster

        n = import_roster(_accounts_engine(args), Path(args.file))
        print(f"roster: {n} staff rows imported", flush=True)
        return 0
    if args.kind == "levels":
        from store.build import import_levels
        from store.db import create_engine

        st = settings_from(args)
        n = import_levels(create_engine(st.db_url), Path(args.file))
        print(f"levels set on {n} unit grids", flush=True)
        return 0
    args.streets = args.file if args.kind == "streets" else None
    args.communities = args.file if args.kind == "communities" else None
    args.grids = args.file if args.kind == "grids" else None
    return cmd_init(args)


def _roads_path(given: str, data_dir: Path) -> Path:
    """``--roads``: a file, or ``basemap:<name>``, an imported road layer's lines (issue 17)."""
    if not given.startswith("basemap:"):
        return Path(given)
    from store.basemap import road_lines

    return road_lines(data_dir, given)


def _import_basemap(args: argparse.Namespace) -> int:
    """``import basemap FILE``: a tile file or a vector layer into ``<data-dir>/basemap`` (issue 17)."""
    from domain.errors import GeoInputError
    from store.basemap import import_layer, load_layers

    st = settings_from(args)
    try:
        done = import_layer(
            st.data_dir, Path(args.file), name=args.name, role=args.role, crs=args.crs,
            minzoom=args.minzoom, maxzoom=args.maxzoom,
        )  # fmt: skip
    except GeoInputError as exc:
        print(f"import basemap: {exc}", file=sys.stderr, flush=True)
        return 2
    x = done.layer
    kind = "vector" if x.vector else f"raster ({x.format})"
    made = f", {x.features:,} features cut into {x.tiles:,} tiles" if x.features else ""
    print(f"basemap layer {x.name!r}: {kind}, role {x.role}, zoom {x.minzoom}–{x.maxzoom}{made} "
          f"in {done.seconds:.1f} s", flush=True)  # fmt: skip
    for note in done.notes:
        print(f"  note: {note}", flush=True)
    print("layers (bottom first): " + ", ".join(f"{y.name} ({y.role})" for y in load_layers(st.data_dir)))
    print("running servers show it on their next page load (no restart)", flush=True)
    return 0


def _import_addresses(args: argparse.Namespace) -> int:
    """``import addresses FILE``: a 门牌 file (CSV or GeoJSON points) into the gazetteer (issue 17)."""
    from store.addresses import column_names, import_addresses
    from store.build import stored_district
    from store.db import session_factory
    from store.geography import load_index

    engine = _accounts_engine(args)  # migrated to the latest schema
    adcode = stored_district(engine)
    if adcode is None:
        print("import addresses: no district is built; run: python app.py init", file=sys.stderr)
        return 2
    with session_factory(engine)() as s:
        index = load_index(s, adcode)
    summary = import_addresses(
        engine, Path(args.file), index, crs=args.crs, columns=column_names(args.columns)
    )
    for line in summary.lines():
        print(line, flush=True)
    print("running servers geocode with it within seconds (no restart)", flush=True)
    return 0


def _import_components(args: argparse.Namespace) -> int:
    """``import components FILE``: a 部件 inventory (GeoJSON, Shapefile or CSV) into the store (issue 18)."""
    from domain.catalogue import load_catalogue
    from domain.errors import GeoInputError
    from store.build import stored_district
    from store.components import column_names, import_components
    from store.db import session_factory
    from store.geography import load_index

    engine = _accounts_engine(args)  # migrated to the latest schema
    adcode = stored_district(engine)
    if adcode is None:
        print("import components: no district is built; run: python app.py init", file=sys.stderr)
        return 2
    with session_factory(engine)() as s:
        index = load_index(s, adcode)
    try:
        summary = import_components(
            engine, Path(args.file), index, load_catalogue(settings_from(args).edition), adcode,
            crs=args.crs, columns=column_names(args.columns), retire_missing=args.retire_missing,
        )  # fmt: skip
    except GeoInputError as exc:
        print(f"import components: {exc}", file=sys.stderr, flush=True)
        return 2
    for line in summary.lines():
        print(line, flush=True)
    print("running servers pick the objects up within seconds (no restart)", flush=True)
    return 0


def _cell(key: str, value: object) -> str:
    """A table cell: rates as percentages, missing values as a dash."""
    if value is None or value != value:  # None or NaN
        return "—"
    return f"{float(value):.1%}" if key.endswith("_rate") or key.endswith("_share") else str(value)  # type: ignore[arg-type]


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a plain aligned text table (wide characters count two columns; missing values as '-')."""
    from rich.cells import cell_len

    cells = [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max([cell_len(h)] + [cell_len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    for line in [list(headers), *cells]:
        print("  ".join(c + " " * (w - cell_len(c)) for c, w in zip(line, widths, strict=True)).rstrip())


def _accounts_engine(args: argparse.Namespace) -> Any:
    """A write engine on the configured database, migrated to the latest schema."""
    from store.db import create_engine
    from store.migrate import upgrade

    engine = create_engine(settings_from(args).db_url)
    upgrade(engine)
    return engine


def cmd_user(args: argparse.Namespace) -> int:
    """Add a person or set a password (printing a generated one once), or list people."""
    from store.accounts import AccountError, add_person, list_people, set_password
    from store.db import transaction

    engine = _accounts_engine(args)
    if args.action == "list":
        with transaction(engine) as s:
            people = list_people(s)
        _table(
            ("id", "role", "name", "department", "area", "active"),
            [
                (p.id, p.role, p.name, p.department_code, p.area_code, "yes" if p.active else "no")
                for p in people
            ],
        )
        return 0
    if args.password_stdin:
        password = (sys.stdin.readline() if sys.stdin else "").rstrip("\r\n")
        if not password:
            raise AccountError("--password-stdin: no password on stdin")
    else:
        password = secrets.token_urlsafe(12)
    if args.action == "password":  # e.g. a supervisor's first sign-in on the handset app (/m)
        with transaction(engine) as s:
            set_password(s, args.id, password)
        print(f"user {args.id}: new password set", flush=True)
        if not args.password_stdin:
            print(f"password: {password}", flush=True)
            print("the password is shown only once; only its hash is stored", file=sys.stderr)
        return 0
    with transaction(engine) as s:
        person = add_person(
            s, args.id, args.role, name=args.name, department=args.department, area=args.area,
            password=password,
        )  # fmt: skip
    print(f"user {person.id} added ({person.role})", flush=True)
    if not args.password_stdin:
        print(f"password: {password}", flush=True)
        print("the password is shown only once; only its hash is stored", file=sys.stderr)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Issue, list or revoke device, gateway and kiosk tokens and API keys."""
    from store.accounts import issue_token, list_tokens, revoke_token
    from store.db import transaction

    engine = _accounts_engine(args)
    if args.action == "add":
        scope = [part.strip() for part in (args.scope or "").split(",") if part.strip()]
        with transaction(engine) as s:
            token, value = issue_token(
                s, args.kind, args.name, person_id=args.person, role=args.role, scope=scope
            )
        print(f"token {token.id}: {value}", flush=True)
        print("the token is shown only once; only its hash is stored (revoke it and add another if lost)",
              file=sys.stderr)  # fmt: skip
        return 0
    if args.action == "revoke":
        with transaction(engine) as s:
            token = revoke_token(s, args.id)
        assert token.revoked_at is not None
        print(f"token {token.id} ({token.kind} {token.name}) revoked at {token.revoked_at:%Y-%m-%dT%H:%MZ}")
        return 0
    with transaction(engine) as s:
        tokens = list_tokens(s)

    def scope_text(scope: list[str]) -> str:
        return ",".join(scope) if len(scope) <= 3 else f"{','.join(scope[:3])},… ({len(scope)})"

    _table(
        ("id", "kind", "name", "prefix", "person", "role", "scope", "created", "revoked"),
        [
            (t.id, t.kind, t.name, f"{t.prefix}…", t.person_id, t.role,
             scope_text(list(t.scope or [])) or None, f"{t.created_at:%Y-%m-%dT%H:%MZ}",
             f"{t.revoked_at:%Y-%m-%dT%H:%MZ}" if t.revoked_at else None)
            for t in tokens
        ],
    )  # fmt: skip
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Simulate cases over the stored district and print calibration figures and CJ/T 292 tables."""
    from datetime import date, datetime, timedelta
    from zoneinfo import ZoneInfo

    from rich.console import Console
    from rich.table import Table

    from feeds.simulate import simulate
    from store.build import BuildRequest, build_city, stored_district
    from store.db import create_engine
    from store.migrate import upgrade

    st = settings_from(args)
    engine = create_engine(st.db_url)
    upgrade(engine)
    if stored_district(engine) is None:
        build_city(engine, BuildRequest())
    tz = ZoneInfo("Asia/Shanghai")
    first = date.fromisoformat(args.start) if args.start else date.today() - timedelta(days=args.days)
    start = datetime(first.year, first.month, first.day, tzinfo=tz)
    console = Console(width=None if sys.stdout.isatty() else 150)
    with progress_bar() as update:
        report = simulate(
            engine,
            days=args.days,
            start=start,
            seed=args.seed,
            reports_per_day=args.reports_per_day,
            edition=args.catalogue,
            progress=lambda done, total: update("simulate", done, total),
            policy=st.policy(),
        )
    f = report.figures
    console.rule(f"模拟数据 SIMULATED DATA · {first} + {args.days} days · seed {args.seed}")
    calib = Table(title="Calibration (targets from domain.md §1.4)", title_justify="left")
    for col in ("figure", "simulated", "target"):
        calib.add_column(col)
    for row in (
        ("reports per day 日均上报", f"{f['reports_per_day']:,.0f}", "about 1,300"),
        ("peak hour 高峰时段", f"{f['peak_hour']}:00", "9–11 h"),
        ("closed 结案 (cases at least 24 h old)", _cell("closed_share", f["closed_share"]), "≥ 95 %"),
        ("mean time to close 平均结案时长", f"{f['mean_hours_to_close']:.1f} h", "about 6.5 h"),
        ("returned 回退", _cell("returned_share", f["returned_share"]), "2–5 %"),
        ("reworked 返工", _cell("reworked_share", f["reworked_share"]), "3–8 %"),
        ("breaching a limit 超期", _cell("breaching_share", f["breaching_share"]), "5–10 %"),
        ("自处置 of patrol reports", _cell("self_handled_share", f["self_handled_share"]), "8 % (set)"),
        ("立案后作废 void after filing", _cell("void_share", f["void_after_filing_share"]), "0.4 % (set)"),
        ("差错结案 error closing", _cell("error_closed_share", f["error_closed_share"]), "0.3 % (set)"),
        ("二级派遣 via a street sub-centre", _cell("second_share", f["second_dispatch_share"]), "10 % (set)"),
        *(
            [("反馈审核退回 feedback sent back", _cell("review_returned_share", f["review_returned_share"]),
              "3 % (set)")] if st.feedback_review else []
        ),
        *(
            [("核查按时派发 check issued on time", _cell("check_sent_share", f["check_sent_on_time_share"]),
              "about 74 % (limit 15 min)")] if st.acceptor_check else []
        ),
        ("commands applied", f"{report.commands:,}", ""),
    ):
        calib.add_row(*row)
    console.print(calib)

    def show(title: str, frame: Any, cols: list[tuple[str, str]], limit: int | None = None) -> None:
        t = Table(title=title, title_justify="left")
        for key, label in cols:
            t.add_column(label, justify="left" if key in ("object_id", "name") else "right")
        for _, row in (frame.head(limit) if limit else frame).iterrows():
            t.add_row(*(_cell(key, row[key]) for key, _ in cols))
        console.print(t)

    code, name, score, grade = (
        ("object_id", "编码 code"),
        ("name", "名称 name"),
        ("score", "综合指标值"),
        ("grade", "等级"),
    )
    show(
        "街道 streets (区域评价)",
        report.streets,
        [code, name, ("reported", "上报"), ("filed", "立案"), ("closed", "结案"), ("close_rate", "结案率"),
         ("close_on_time_rate", "按期结案率"), score, grade],
    )  # fmt: skip
    show(
        "专业部门 departments",
        report.departments,
        [code, name, ("dispatched", "派遣"), ("handled", "处置"), ("handle_on_time_rate", "按期处置率"),
         ("rework_rate", "返工率"), ("close_rate", "结案率"), score, grade],
    )  # fmt: skip
    show(
        "街道分中心 sub-centres (二级派遣)",
        report.subcentres,
        [code, name, ("sub_received", "应二级派遣"), ("sub_dispatched", "二级派遣"),
         ("sub_dispatch_on_time_rate", "按时二级派遣率"), ("sub_returned", "回退"),
         ("accurate_sub_dispatch_rate", "二级派遣准确率")],
    )  # fmt: skip
    show(
        f"监督员 supervisors (top 15 of {len(report.supervisors)})",
        report.supervisors,
        [code, ("patrol_reported", "上报"), ("valid_report_rate", "有效上报率"), ("missed_rate", "漏报率"),
         ("verify_on_time_rate", "按时核实率"), ("check_on_time_rate", "按时核查率"), score, grade],
        limit=15,
    )  # fmt: skip
    console.print("模拟数据: generated by feeds/sources/caseflow.py, not real cases.", highlight=False)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Serve GridWall (builds the built-in district on first start) under the production server."""
    from store.accounts import (
        ADMIN_PASSWORD_FILE,
        pending_admin_password,
        provision_embedded,
        write_device_tokens,
    )
    from store.build import BuildRequest, build_city, stored_district
    from store.db import create_engine
    from store.migrate import upgrade

    if args.role and not args.redis:
        print("--role needs --redis URL", file=sys.stderr)
        return 2
    st = run_settings(args)
    st.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(st.db_url)
    upgrade(engine)
    if stored_district(engine) is None:
        print(f"first start: building district {args.district or '110101 (built-in)'} ...", flush=True)
        with progress_bar() as update:
            s = build_city(engine, BuildRequest(district=args.district), update)
        print(f"built {s.streets} streets, {s.communities} communities, {s.grids} unit grids", flush=True)
    secret = load_secrets(st.data_dir)
    keep_admin = st.data_dir / ADMIN_PASSWORD_FILE
    made = provision_embedded(engine, kiosk_secret=secret["kiosk_token"], keep_admin=keep_admin)
    if made.devices:
        path = write_device_tokens(st.data_dir / "device-tokens.csv", made.devices)
        print(f"created {len(made.devices)} supervisor devices; their tokens are in {path}", flush=True)
    if args.role in ("ingest", "aggregator"):  # scale-out parts without clients (README "Production")
        engine.dispose()
        return run_background_role(st, args.role)
    sim = None
    if not args.role and not args.no_simulation:
        from feeds.simulator import Simulation

        sim = Simulation.prepare(
            engine, st.data_dir, seed=args.seed, edition=args.catalogue,
            progress=lambda m: print(m, flush=True), policy=st.policy(),
        )  # fmt: skip
    engine.dispose()  # the server's worker opens its own connections after the fork
    from gridwall.server import Served, serve

    host, port = args.host, args.port
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host

    def make() -> Served:  # in the server's worker process
        from gridwall.runtime import build

        rt = build(st, args.role or "embedded").start()

        def stop() -> None:
            if sim is not None:
                sim.stop()
            rt.stop()

        def ready(bound: int) -> None:
            if sim is not None:
                sim.start(rt, f"http://{shown}:{bound}")
            rt.web.cache.current()  # warm the page data before announcing the URLs
            once = create_engine(st.db_url)
            admin = pending_admin_password(once, keep_admin)
            once.dispose()
            if admin is not None:  # every start until the admin has logged in (the file then goes)
                print(f"admin: user {admin[0]}, password {admin[1]} (shown until the first login; change it)",
                      flush=True)  # fmt: skip
            print(f"wall: http://{shown}:{bound}/wall?token={secret['kiosk_token']}", flush=True)
            print(f"desk: http://{shown}:{bound}/desk", flush=True)
            print(f"handset: http://{shown}:{bound}/m/ (supervisors' phones)", flush=True)
            from dashboard.labels import font_warning

            if (warning := font_warning()) is not None:
                print(warning, flush=True)

        return Served(rt.web.server, stop, ready)

    return serve(make, host=host, port=port, threads=args.threads)


def run_settings(args: argparse.Namespace) -> Any:
    """The settings of ``app.py run`` from its options and the environment."""
    from gridwall.settings import settings_from

    return settings_from(
        args.data_dir, args.db, redis_url=args.redis, redis_prefix=args.redis_prefix, edition=args.catalogue,
        lock_ttl=args.lock_ttl, trusted_proxies=args.trusted_proxies,
        feedback_review=args.feedback_review, acceptor_check=args.acceptor_check,
    )  # fmt: skip


def run_background_role(st: Any, role: str) -> int:
    """Run an ingest or aggregator process until SIGTERM/SIGINT."""
    import logging
    import signal
    import threading

    from gridwall.runtime import build

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rt = build(st, role).start()  # type: ignore[arg-type]
    if role == "ingest":
        print(f"{rt.consumer.name}: standing by for the ingest stream", flush=True)
    else:
        print(f"aggregator {rt.broadcaster.lock.token[:8]}: standing by for the producer lock", flush=True)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(1.0):
        pass
    rt.stop()
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay GeoLife traces or 311 requests into a running GridWall through /device (docs/replay.md)."""
    from feeds.replay import run_plan, setup_people
    from feeds.replay.cli import build_plan
    from store.db import create_engine

    plan, speed = build_plan(args, HERE)
    token = args.token
    if not token:
        st = settings_from(args)
        token = setup_people(create_engine(st.db_url), plan.people, plan.token_name)
        if args.setup_only:
            print(f"gateway token {plan.token_name} for {len(plan.people)} people: {token}", flush=True)
            return 0
    shown = "max" if speed is None else f"{speed:g}x"
    print(f"replay {plan.name}: {plan.inputs:,} inputs in {len(plan.events):,} events to {args.url}, "
          f"speed {shown}, instants shifted by {plan.shift}", flush=True)  # fmt: skip
    with progress_bar() as update:
        summary = run_plan(
            plan, args.url, token, speed=speed, connections=args.connections, window=args.window,
            progress=lambda done, total: update(plan.name, done, total),
        )  # fmt: skip
    _table(("kind", "outcome", "answered by", "count"), [(*r[:3], f"{r[3]:,}") for r in summary.rows()])
    print(f"{sum(summary.sent.values()):,} inputs sent in {summary.seconds:.1f} s "
          f"({summary.retries} retries after rate_limited/unavailable)", flush=True)  # fmt: skip
    return 0


def centre_options(p: argparse.ArgumentParser) -> None:
    """The two centres' optional lifecycle steps (every process of a deployment must agree)."""
    p.add_argument(
        "--feedback-review", action="store_true", default=None,
        help="the 指挥中心 reviews each 处理反馈 before the 核查 (反馈审核; env GW_FEEDBACK_REVIEW=1)",
    )  # fmt: skip
    p.add_argument(
        "--acceptor-check", action="store_true", default=None,
        help="the acceptor issues each 核查 task (派发核查; env GW_ACCEPTOR_CHECK=1); "
        "default: it goes to the grid's supervisor with the feedback",
    )  # fmt: skip


def parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", help="folder for the database and secrets (default ./var, env GW_DATA_DIR)"
    )
    common.add_argument(
        "--db",
        help="database URL (default sqlite:///<data-dir>/gridwall.db, env GW_DB_URL); "
        "e.g. postgresql://user@host/db",
    )
    p = argparse.ArgumentParser(
        prog="app.py",
        description="GridWall: real-time command-centre wall for grid-based city management.",
    )
    sub = p.add_subparsers(dest="command", metavar="{run,init,import,simulate,user,token,replay}")
    run = sub.add_parser("run", parents=[common], help="serve the wall and the desk (default)")
    run.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    run.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    run.add_argument(
        "--threads",
        type=int,
        default=THREADS,
        help=f"server threads: open websockets at once, made as needed (default {THREADS})",
    )
    run.add_argument("--district", help="adcode to build on first start (default 110101, built in)")
    run.add_argument(
        "--no-simulation", action="store_true", help="do not run the built-in simulation (real feeds only)"
    )
    run.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    run.add_argument("--catalogue", choices=["cjt214", "gbt30428"], default="cjt214", help="class catalogue")
    run.add_argument(
        "--role", choices=["web", "aggregator", "ingest"], help="scale-out: run one part (README Production)"
    )
    run.add_argument("--redis", help="Redis URL of the scale-out live state and message queue")
    run.add_argument("--redis-prefix", default="gw", help="key prefix in Redis (default gw)")
    run.add_argument("--lock-ttl", type=float, help="aggregator: producer lock TTL in seconds (default 5)")
    run.add_argument(
        "--trusted-proxies", type=int, default=0,
        help="reverse proxies in front (1 behind the shipped nginx): client address, scheme and host are "
        "read from their X-Forwarded-* headers (default 0: the connection's own)",
    )  # fmt: skip
    centre_options(run)
    run.set_defaults(func=cmd_run)

    init = sub.add_parser("init", parents=[common], help="build a district's streets, communities and grids")
    init.add_argument(
        "--district", help="6-digit adcode of a county (default: the built district, else 110101)"
    )
    init.add_argument("--streets", help="street polygons (GeoJSON or Shapefile) with name and code")
    init.add_argument("--communities", help="community polygons (GeoJSON or Shapefile) with name and code")
    init.add_argument("--grids", help="already-surveyed unit grids with 15-digit codes (replaces generation)")
    init.add_argument("--crs", help="CRS of the input files: wgs84, gcj02 or bd09 (default: from the file)")
    init.add_argument(
        "--area-size", type=int, default=18, help="unit grids per responsibility area (default 18)"
    )
    init.add_argument(
        "--regenerate",
        action="store_true",
        help="generate streets and communities even where imported ones are stored",
    )
    init.add_argument(
        "--roads",
        help="road centre lines (GeoJSON or Shapefile): unit grids follow them, about 10,000 m² each; "
        "remembered under <data-dir>/roads for plain re-runs; basemap:NAME takes an imported road layer",
    )
    init.add_argument(
        "--roads-crs", help="CRS of --roads: wgs84, gcj02, bd09 or cgcs2000 (default: from the file)"
    )
    init.add_argument(
        "--no-roads", action="store_true", help="forget the remembered roads: cut the 100 m lattice again"
    )
    init.set_defaults(func=cmd_init)

    imp = sub.add_parser(
        "import", parents=[common], help="import boundaries or grid levels into the district"
    )
    imp.add_argument(
        "kind",
        choices=["streets", "communities", "grids", "levels", "roster", "basemap", "addresses", "components"],
    )
    imp.add_argument(
        "file",
        help="GeoJSON/Shapefile (levels: CSV code,level; roster: CSV grid,duty,name,phone; "
        "basemap: .mbtiles, .pmtiles, .geojson or .shp; addresses: CSV address,lon,lat[,number,community] "
        "or GeoJSON points with an address property)",
    )
    imp.add_argument("--district", help="adcode (default: the built district)")
    imp.add_argument("--crs", help="CRS of the file: wgs84, gcj02 or bd09")
    imp.add_argument("--name", help="basemap: the layer's name (default: the file's name)")
    imp.add_argument("--role", help="basemap: roads, buildings, water, green, places or other (guessed)")
    imp.add_argument("--minzoom", type=int, help="basemap: the first zoom the layer is drawn at")
    imp.add_argument("--maxzoom", type=int, help="basemap: GeoJSON/Shapefile layers are cut up to this zoom")
    imp.add_argument(
        "--columns",
        help="addresses: the file's column names when not address,lon,lat,number,community (or 地址,经度,"
        "纬度,门牌号,社区), e.g. --columns address=标准地址,lon=X,lat=Y; components: id,class,name,state,"
        "unit_main,unit_owner,unit_care,source,surveyed_on,changed_on,lon,lat (default: ObjID, ObjName, "
        "ObjState, DeptCode1..3, DataSource, ORDate, CHDate, PointX, PointY)",
    )
    imp.add_argument(
        "--retire-missing",
        action="store_true",
        help="components: the file is the whole inventory; objects not in it are retired (废弃)",
    )
    imp.add_argument(
        "--area-size", type=int, default=18, help="unit grids per responsibility area (default 18)"
    )
    imp.set_defaults(func=cmd_import)
    sim = sub.add_parser("simulate", parents=[common], help="simulate cases and print CJ/T 292 tables")
    sim.add_argument("--days", type=int, default=30, help="days to simulate (default 30)")
    sim.add_argument("--start", help="first day, YYYY-MM-DD (default: --days before today)")
    sim.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    sim.add_argument("--reports-per-day", type=float, default=1300, help="mean reports a day (default 1,300)")
    sim.add_argument("--catalogue", choices=["cjt214", "gbt30428"], default="cjt214", help="class catalogue")
    centre_options(sim)
    sim.set_defaults(func=cmd_simulate)

    user = sub.add_parser("user", help="add or list people (supervisors, operators, leaders, admins)")
    user_sub = user.add_subparsers(dest="action", required=True, metavar="{add,list,password}")
    uadd = user_sub.add_parser("add", parents=[common], help="add a person; a random password is shown once")
    uadd.add_argument("id", help="person id, e.g. sup-001 or wang.li")
    uadd.add_argument(
        "--role",
        required=True,
        help="supervisor, acceptor, shift_leader, dispatcher, department, leader or admin",
    )
    uadd.add_argument("--name", help="display name (default: the id)")
    uadd.add_argument("--department", help="department code (needed for role department)")
    uadd.add_argument("--area", help="responsibility area code (supervisors)")
    uadd.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin instead of generating one"
    )
    uadd.set_defaults(func=cmd_user)
    user_sub.add_parser("list", parents=[common], help="list people").set_defaults(func=cmd_user)
    upw = user_sub.add_parser(
        "password", parents=[common], help="set a person's password (a random one is shown once)"
    )
    upw.add_argument("id", help="person id")
    upw.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin instead of generating one"
    )
    upw.set_defaults(func=cmd_user)

    tok = sub.add_parser("token", help="issue, list or revoke device/gateway/kiosk tokens and API keys")
    tok_sub = tok.add_subparsers(dest="action", required=True, metavar="{add,list,revoke}")
    tadd = tok_sub.add_parser("add", parents=[common], help="issue a token; its secret is shown once")
    tadd.add_argument("kind", metavar="KIND", help="device, gateway, kiosk or api")
    tadd.add_argument("--name", required=True, help="what the token is for, e.g. 'handset 17' or 'vendor X'")
    tadd.add_argument("--person", help="device: the supervisor's person id")
    tadd.add_argument("--role", help="api: lifecycle role, e.g. call_center, leader, department:<code>")
    tadd.add_argument("--scope", help="gateway: person ids it may speak for, comma separated, or * for all")
    tadd.set_defaults(func=cmd_token)
    tlist = tok_sub.add_parser("list", parents=[common], help="list tokens, never secrets")
    tlist.set_defaults(func=cmd_token)
    trev = tok_sub.add_parser("revoke", parents=[common], help="revoke a token by id")
    trev.add_argument("id", type=int, help="token id (see token list)")
    trev.set_defaults(func=cmd_token)
    from feeds.replay.cli import add_arguments as replay_arguments

    replay_arguments(sub, common).set_defaults(func=cmd_replay)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, run, and turn expected failures into one clear line."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0] not in COMMANDS and args_list[0] not in ("-h", "--help")):
        args_list.insert(0, "run")
    args = parser().parse_args(args_list)
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    from domain.errors import GeoInputError, RosterError, SimulationError  # light: `user`, `token` start fast
    from feeds.replay import ReplayError
    from store.accounts import AccountError

    try:
        return int(args.func(args))
    except AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except (GeoInputError, SimulationError, ReplayError, RosterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except OperationalError as exc:
        print(f"error: database unreachable: {str(exc.orig).strip().splitlines()[0]}", file=sys.stderr)
    except SQLAlchemyError as exc:
        print(f"error: database: {str(exc).splitlines()[0]}", file=sys.stderr)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
