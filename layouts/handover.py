"""``/desk/handover``: the shift handover (交班) and its acknowledgement (接班确认), issue 21 part 4.

- **This shift** (``ids.HANDOVER_DRAFT``): the shift the city's clock is in (``store.handover.shift_plan``,
  ``domain.shift.shift_of``) and, until it is handed over, its draft — the snapshot's figures taken now
  from the read engine — with the notes box and the 交班 button for a shift leader.
- **Waiting to be taken over** (``ids.HANDOVER_PENDING``): handovers nobody acknowledged yet, each with
  接班确认 for a shift leader other than its author.
- **History** (``ids.HANDOVER_HISTORY``): every handover, searchable by local date range, person (id or
  name, handing over or taking over) and text in the notes; each links to ``/desk/handover/<id>``.

A handover's page shows its snapshot as taken, with a printable page (``/desk/handover/<id>/print``,
print CSS, A4) and a PDF of that page (``/desk/handover/<id>.pdf``, rendered by WeasyPrint with the
Noto CJK fonts). Buttons post ``handover_open`` / ``handover_ack`` through ``assets/gw-desk.js`` to
``POST /api/v1/commands`` (``dashboard.commands.run_handover`` → the pipeline). Only shift leaders,
leaders and admins see these pages; only shift leaders act.
"""

from __future__ import annotations

import html as htmlmod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from dash import dcc, html
from flask import Flask, Response, request
from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from dashboard import ids
from dashboard.auth import current_person
from dashboard.i18n import pick_lang, t
from domain.lifecycle import Context
from domain.shift import shift_of
from layouts.chrome import TZ, PageContext, Route, data_attrs, header, result_box
from store import handover as store
from store.handover import shift_plan
from store.models import Department, District, Street

VIEWERS = frozenset({"shift_leader", "leader", "admin"})
PRINT_ROWS = 30  # rows of each list on paper (WeasyPrint lays out ~60 table rows a second; the page has all)
ACTOR = "shift_leader"
TEXTAREA_ROWS = 4


# -- the snapshot as sections (one model for the desk page, the printable page and the PDF) ---------------


@dataclass(frozen=True)
class Section:
    """One part of a handover: a title, a line under it, a table (may be empty) and a note."""

    key: str
    title: str
    summary: str
    head: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass(frozen=True)
class Names:
    """Names the snapshot's codes are shown with: classes, streets, departments."""

    classes: Mapping[str, str]  # "<kind>:<code>" → 小类 name
    streets: Mapping[str, str]
    departments: Mapping[str, str]

    def cls(self, kind: str | None, code: str | None) -> str:
        """A class as ``name (code)``."""
        name = self.classes.get(f"{kind}:{code}")
        return f"{name} ({code})" if name else str(code or "—")


def names_of(conn: Connection, rules: Context | None) -> Names:
    """The names of the district's streets and departments and of the catalogue's classes."""
    classes = (
        {f"{c.kind.value}:{c.code}": c.name for c in rules.catalogue.classes} if rules is not None else {}
    )
    streets = {str(c): str(n) for c, n in conn.execute(select(Street.code, Street.name))}
    depts = {str(c): str(n) for c, n in conn.execute(select(Department.code, Department.name))}
    return Names(classes, streets, depts)


def local_dt(value: str | datetime | None) -> str:
    """An instant (ISO text or aware) as the city's ``YYYY-MM-DD HH:MM``."""
    if value is None or value == "":
        return "—"
    dt = datetime.fromisoformat(value) if isinstance(value, str) else value
    return dt.astimezone(TZ).strftime("%Y-%m-%d %H:%M")


def shift_label(start: str | datetime | None, end: str | datetime | None) -> str:
    """A shift as ``YYYY-MM-DD HH:MM–HH:MM`` (local; the end's hour 24:00 shown as such)."""
    if not start or not end:
        return "—"
    s = datetime.fromisoformat(start) if isinstance(start, str) else start
    e = datetime.fromisoformat(end) if isinstance(end, str) else end
    ls, le = s.astimezone(TZ), e.astimezone(TZ)
    tail = "24:00" if le.hour == 0 and le.minute == 0 and le.date() > ls.date() else le.strftime("%H:%M")
    return f"{ls:%Y-%m-%d %H:%M}–{tail}"


def _left(seconds: Any, lang: str) -> str:
    if not isinstance(seconds, int | float):
        return "—"
    late = seconds < 0
    s = abs(int(seconds))
    h, m = s // 3600, s % 3600 // 60
    text = f"{h}h{m:02d}m" if h < 48 else f"{h // 24}d{h % 24}h"
    return f"{t('case.late', lang)} {text}" if late else f"{t('case.left', lang)} {text}"


def _stage(stage: str | None, lang: str) -> str:
    return t(f"stage.{stage}", lang) if stage else "—"


def _count(block: Mapping[str, Any], lang: str, late: bool = False) -> str:
    text = t("ho.count", lang).format(n=f"{int(block.get('count') or 0):,}")
    if late:
        text += " · " + t("ho.late_n", lang).format(n=f"{int(block.get('late') or 0):,}")
    shown = len(block.get("cases") or block.get("items") or [])
    more = int(block.get("count") or 0) - shown
    return text + (" · " + t("ho.more", lang).format(n=f"{more:,}") if more > 0 else "")


def sections(snap: Mapping[str, Any], lang: str, names: Names) -> list[Section]:
    """A snapshot (``store.handover.snapshot``) as the sections every view of a handover draws."""
    out: list[Section] = []
    buckets = list(snap.get("buckets") or [])
    opened = snap.get("open") or {}
    rows: list[tuple[str, ...]] = []
    totals = [0] * len(buckets)
    for stage, cells in (opened.get("by_stage") or {}).items():
        values = [int(cells.get(b, 0)) for b in buckets]
        totals = [a + b for a, b in zip(totals, values, strict=True)]
        rows.append((_stage(stage, lang), *(f"{v:,}" for v in values), f"{sum(values):,}"))
    if rows:
        rows.append((t("ho.total", lang), *(f"{v:,}" for v in totals), f"{sum(totals):,}"))
    out.append(
        Section(
            "open",
            t("ho.open_cases", lang),
            t("ho.count", lang).format(n=f"{int(opened.get('total') or 0):,}"),
            (t("ho.col.stage", lang), *(t(f"ho.bucket.{b}", lang) for b in buckets), t("ho.total", lang)),
            tuple(rows),
        )
    )
    case_head = (
        t("ho.col.case", lang),
        t("ho.col.stage", lang),
        t("ho.col.class", lang),
        t("queue.col.street", lang),
        t("ho.col.deadline", lang),
        t("ho.col.left", lang),
    )

    def case_rows(items: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, ...], ...]:
        return tuple(
            (
                str(c.get("id")),
                _stage(c.get("stage"), lang),
                names.cls(c.get("kind"), c.get("class_code")),
                names.streets.get(str(c.get("street")), str(c.get("street") or "—")),
                local_dt(c.get("deadline")),
                _left(c.get("left_s"), lang),
            )
            for c in items
        )

    overdue = snap.get("overdue") or {}
    out.append(
        Section(
            "overdue",
            t("ho.overdue", lang),
            _count(overdue, lang),
            case_head,
            case_rows(overdue.get("cases") or []),
        )
    )
    risk = snap.get("near_deadline") or {}
    out.append(
        Section(
            "risk",
            t("ho.risk", lang),
            _count(risk, lang),
            case_head,
            case_rows(risk.get("cases") or []),
            t("ho.risk.rule", lang),
        )
    )
    em = snap.get("emergencies") or {}
    em_rows = tuple(
        (
            str(c.get("id")),
            names.cls(c.get("kind"), c.get("class_code")),
            local_dt(c.get("reported_at")),
            _stage(c.get("stage"), lang) if c.get("open") else t(f"status.{c.get('status')}", lang),
        )
        for c in em.get("cases") or []
    )
    out.append(
        Section(
            "emergencies",
            t("ho.emergencies", lang),
            _count(em, lang),
            (
                t("ho.col.case", lang),
                t("ho.col.class", lang),
                t("ho.col.reported", lang),
                t("ho.col.stage", lang),
            ),
            em_rows,
        )
    )
    tasks = snap.get("tasks") or {}
    task_rows = tuple(
        (
            str(x.get("case_id")),
            t(f"ho.task.{x.get('kind')}", lang),
            str(x.get("assignee") or "—"),
            local_dt(x.get("deadline")),
            t("case.late", lang) if x.get("late") else "",
        )
        for x in tasks.get("items") or []
    )
    out.append(
        Section(
            "tasks",
            t("ho.tasks", lang),
            _count(tasks, lang, late=True),
            (
                t("ho.col.case", lang),
                t("ho.col.kind", lang),
                t("ho.col.assignee", lang),
                t("ho.col.deadline", lang),
                "",
            ),
            task_rows,
        )
    )
    orders = snap.get("orders") or {}
    order_rows = tuple(
        (
            str(o.get("case_id")),
            names.departments.get(str(o.get("target")), str(o.get("target"))),
            local_dt(o.get("deadline")),
            str(o.get("note") or "—"),
            t("order.late", lang) if o.get("late") else "",
        )
        for o in orders.get("items") or []
    )
    out.append(
        Section(
            "orders",
            t("ho.orders", lang),
            _count(orders, lang, late=True),
            (
                t("ho.col.case", lang),
                t("ho.col.target", lang),
                t("order.deadline", lang),
                t("order.note", lang),
                "",
            ),
            order_rows,
        )
    )
    blind = snap.get("blind_spots")
    out.append(Section("blind", t("ho.blind", lang), t("ho.blind.na", lang) if blind is None else "", (), ()))
    return out


# -- Dash views ----------------------------------------------------------------------------------


def _case_link(ctx: PageContext, text: str) -> Any:
    return dcc.Link(text, href=ctx.href(f"/case/{text}")) if text and text != "—" else text


def section_view(ctx: PageContext, s: Section) -> html.Section:
    """One section on the desk (case numbers link to their pages)."""
    body: list[Any] = [html.H3(s.title), html.P(s.summary, className="gw-ho-summary")]
    if s.note:
        body.append(html.P(s.note, className="gw-dim gw-ho-note"))
    if s.rows:
        linked = s.head and s.head[0] == t("ho.col.case", ctx.lang)
        body.append(
            html.Table(
                [
                    html.Thead(html.Tr([html.Th(h) for h in s.head])),
                    html.Tbody(
                        [
                            html.Tr(
                                [
                                    html.Td(_case_link(ctx, c) if linked and i == 0 else c)
                                    for i, c in enumerate(r)
                                ]
                            )
                            for r in s.rows
                        ]
                    ),
                ],
                className="gw-desk-table gw-ho-table",
            )
        )
    elif s.head:
        body.append(html.P(t("ho.empty", ctx.lang), className="gw-dim"))
    return html.Section(body, className=f"gw-ho-section gw-ho-{s.key}")


def snapshot_view(ctx: PageContext, snap: Mapping[str, Any], names: Names) -> html.Div:
    """A snapshot's sections, with when it was taken."""
    taken = html.P(f"{t('ho.taken', ctx.lang)} {local_dt(snap.get('taken_at'))}", className="gw-dim")
    return html.Div(
        [taken, *(section_view(ctx, s) for s in sections(snap, ctx.lang, names))], className="gw-ho-snapshot"
    )


def _notes_box(lang: str, label: str, name: str = "opinion") -> html.Label:
    return html.Label(
        [
            html.Span(label),
            dcc.Textarea(
                name=name,
                rows=TEXTAREA_ROWS,
                maxLength=store.MAX_NOTES,
                placeholder=t("ho.notes.hint", lang),
                className="gw-ho-notes-box",
            ),
        ],
        className="gw-ho-notes-label",
    )


def _ack_panel(ctx: PageContext, h: store.Handover) -> Any:
    """接班确认 for a shift leader other than the author; a line saying why not otherwise."""
    me = str(ctx.person.get("person_id") or "")
    if ctx.person.get("role") != ACTOR:
        return html.P(t("ho.only_leader", ctx.lang), className="gw-dim")
    if h.created_by == me:
        return html.P(t("ho.ack.self", ctx.lang), className="gw-dim gw-ho-self")
    return html.Div(
        [
            _notes_box(ctx.lang, t("ho.ack_notes", ctx.lang)),
            html.Button(
                t("ho.ack_btn", ctx.lang),
                className="gw-act-btn gw-ho-ack",
                **data_attrs(gw_action="handover_ack", gw_key=f"handover-ack-{h.id}-{me}", gw_reload="1"),
            ),
        ],
        className="gw-act gw-ho-act",
        **data_attrs(gw_case=str(h.id)),
    )


def _meta(ctx: PageContext, h: store.Handover) -> html.Div:
    lang = ctx.lang
    ack = (
        f"{t('ho.acked', lang)}: {h.acknowledged_by_name} · {local_dt(h.acknowledged_at)}"
        if not h.pending
        else t("ho.pending", lang)
    )
    return html.Div(
        [
            html.P([html.Strong(f"{t('ho.col.shift', lang)} "), shift_label(h.shift_start, h.shift_end)]),
            html.P(
                [html.Strong(f"{t('ho.col.by', lang)} "), f"{h.created_by_name} · {local_dt(h.created_at)}"]
            ),
            html.P(ack, className="gw-ho-ack-line" + (" gw-ho-waiting" if h.pending else "")),
            *([html.P([html.Strong(f"{t('ho.ack_notes', lang)} "), h.ack_notes])] if h.ack_notes else []),
        ],
        className="gw-ho-meta",
    )


def _forbidden(ctx: PageContext) -> html.Div:
    title = t("ho.title", ctx.lang)
    return html.Div(
        [header(ctx, [(title, None)], title), html.Main(html.P(t("ho.not_allowed", ctx.lang)))],
        className="gw-page gw-desk-page gw-scroll",
    )


def _parse_day(text: str | None) -> date | None:
    if not text:
        return None
    return date.fromisoformat(text.strip()[:10])


def _query(ctx: PageContext, key: str) -> str:
    return (ctx.query.get(key) or [""])[0][:100]


def page(ctx: PageContext) -> html.Div:
    """``/desk/handover``: this shift (draft or handed over), the pending handovers, the history."""
    lang, role = ctx.lang, ctx.person.get("role")
    if role not in VIEWERS:
        return _forbidden(ctx)
    span = shift_of(ctx.now, shift_plan(), TZ)
    me = str(ctx.person.get("person_id") or "")
    bad = False
    try:
        start, end = _parse_day(_query(ctx, "from")), _parse_day(_query(ctx, "to"))
    except ValueError:
        start = end = None
        bad = True
    with ctx.data.engine.connect() as conn:
        names = names_of(conn, ctx.rules)
        done = store.for_shift(conn, span.start)
        draft = store.snapshot(conn, ctx.now, span.start, span.end) if done is None else None
        waiting = store.pending(conn)
        history = store.search(
            conn,
            TZ,
            start=start,
            end=end,
            person=_query(ctx, "person") or None,
            text=_query(ctx, "q") or None,
        )
    title = t("ho.title", lang)
    current: list[Any] = [html.H2(f"{t('ho.current', lang)} · {span.label}")]
    if done is not None:
        current.append(
            html.P(
                [
                    f"{t('ho.done', lang)}: {done.created_by_name} · {local_dt(done.created_at)} · ",
                    dcc.Link(
                        t("ho.number", lang).format(n=done.id), href=ctx.href(f"/desk/handover/{done.id}")
                    ),
                ],
                className="gw-ho-done",
            )
        )
    else:
        assert draft is not None
        current.append(html.P(t("ho.draft", lang), className="gw-dim"))
        current.append(snapshot_view(ctx, draft, names))
        if role == ACTOR:
            key = f"handover-open-{me}-{span.start:%Y%m%d%H%M}"
            current.append(
                html.Div(
                    [
                        _notes_box(lang, t("ho.notes", lang)),
                        html.Button(
                            t("ho.open_btn", lang),
                            className="gw-act-btn gw-ho-open",
                            **data_attrs(gw_action="handover_open", gw_key=key, gw_reload="1"),
                        ),
                    ],
                    className="gw-act gw-ho-act",
                    **data_attrs(gw_case="shift"),
                )
            )
        else:
            current.append(html.P(t("ho.only_leader", lang), className="gw-dim"))
    pend: list[Any] = [html.H2(t("ho.pending", lang))]
    if not waiting:
        pend.append(html.P(t("ho.pending.none", lang), className="gw-dim"))
    for h in waiting:
        pend.append(
            html.Div(
                [
                    html.H3(
                        dcc.Link(
                            t("ho.number", lang).format(n=h.id)
                            + " · "
                            + shift_label(h.shift_start, h.shift_end),
                            href=ctx.href(f"/desk/handover/{h.id}"),
                        )
                    ),
                    _meta(ctx, h),
                    html.P([html.Strong(f"{t('ho.notes', lang)} "), h.notes or "—"], className="gw-ho-notes"),
                    _ack_panel(ctx, h),
                ],
                className="gw-ho-pending-item",
            )
        )
    return html.Div(
        [
            header(ctx, [(title, None)], title),
            html.Main(
                [
                    result_box(lang),
                    html.Section(current, id=ids.HANDOVER_DRAFT, className="gw-ho-block"),
                    html.Section(pend, id=ids.HANDOVER_PENDING, className="gw-ho-block"),
                    _history(ctx, history, bad),
                ],
                className="gw-worklist-page gw-ho-page",
            ),
        ],
        className="gw-page gw-desk-page gw-scroll",
        lang="zh-CN" if lang == "zh" else "en",
    )


def _history(ctx: PageContext, found: Sequence[store.Handover], bad: bool) -> html.Section:
    lang = ctx.lang

    def box(key: str, label: str, hint: str = "") -> html.Label:
        return html.Label([html.Span(label), dcc.Input(name=key, value=_query(ctx, key), placeholder=hint)])

    form = html.Form(
        [
            box("from", t("ho.search.from", lang), "YYYY-MM-DD"),
            box("to", t("ho.search.to", lang), "YYYY-MM-DD"),
            box("person", t("ho.search.person", lang)),
            box("q", t("ho.search.text", lang)),
            dcc.Input(name="lang", value=lang, type="hidden"),
            html.Button(t("ho.search.apply", lang), type="submit"),
        ],
        action="/desk/handover",
        method="get",
        id=ids.HANDOVER_SEARCH,
        className="gw-ho-search",
    )
    body: list[Any] = [html.H2(t("ho.history", lang)), form]
    if bad:
        body.append(html.P(t("ho.search.bad", lang), className="gw-eval-error"))
    if not found:
        body.append(html.P(t("ho.none", lang), className="gw-dim"))
    else:
        head = html.Tr(
            [
                html.Th(t(k, lang))
                for k in ("ho.col.shift", "ho.col.by", "ho.col.at", "ho.col.ack", "ho.col.notes")
            ]
        )
        rows = [
            html.Tr(
                [
                    html.Td(
                        dcc.Link(
                            f"#{h.id} · {shift_label(h.shift_start, h.shift_end)}",
                            href=ctx.href(f"/desk/handover/{h.id}"),
                        )
                    ),
                    html.Td(h.created_by_name),
                    html.Td(local_dt(h.created_at)),
                    html.Td(
                        t("ho.pending", lang)
                        if h.pending
                        else f"{h.acknowledged_by_name} · {local_dt(h.acknowledged_at)}"
                    ),
                    html.Td(
                        (h.notes[:80] + "…") if len(h.notes) > 80 else (h.notes or "—"),
                        className="gw-order-note",
                    ),
                ],
                className="gw-ho-row" + (" gw-ho-waiting" if h.pending else ""),
            )
            for h in found
        ]
        body.append(html.Table([html.Thead(head), html.Tbody(rows)], className="gw-desk-table gw-worklist"))
    return html.Section(body, id=ids.HANDOVER_HISTORY, className="gw-ho-block")


def detail(ctx: PageContext, hid: str) -> html.Div:
    """``/desk/handover/<id>``: one handover as taken, its acknowledgement, printable and PDF links."""
    lang = ctx.lang
    if ctx.person.get("role") not in VIEWERS:
        return _forbidden(ctx)
    with ctx.data.engine.connect() as conn:
        h = store.get(conn, int(hid)) if hid.isdigit() and len(hid) < 19 else None
        if h is None:
            raise KeyError(hid)  # the router's "not found"
        names = names_of(conn, ctx.rules)
    title = t("ho.number", lang).format(n=h.id)
    q = "?lang=en" if lang == "en" else ""
    links = html.P(
        [
            html.A(
                t("ho.print", lang),
                href=f"/desk/handover/{h.id}/print{q}",
                target="_blank",
                className="gw-ho-print",
            ),
            " · ",
            html.A(t("ho.pdf", lang), href=f"/desk/handover/{h.id}.pdf{q}", className="gw-ho-pdf"),
        ],
    )
    body: list[Any] = [
        result_box(lang),
        _meta(ctx, h),
        links,
        html.Section([html.H3(t("ho.notes", lang)), html.P(h.notes or "—", className="gw-ho-notes")]),
        snapshot_view(ctx, h.snapshot, names),
    ]
    if h.pending:
        body.insert(3, _ack_panel(ctx, h))
    crumbs = [(t("ho.title", lang), "/desk/handover"), (title, None)]
    return html.Div(
        [header(ctx, crumbs, title), html.Main(body, id=ids.HANDOVER_DETAIL, className="gw-worklist-page")],
        className="gw-page gw-desk-page gw-scroll",
        lang="zh-CN" if lang == "zh" else "en",
    )


ROUTES = [Route(r"/desk/handover", page), Route(r"/desk/handover/(\d+)", detail)]


# -- the printable page and its PDF (Flask) ----------------------------------------------------

PRINT_CSS = """
@page { size: A4; margin: 14mm 12mm 16mm; @bottom-right { content: counter(page) " / " counter(pages);
  font-size: 8pt; color: #555; } }
* { box-sizing: border-box; }
body { font-family: "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Microsoft YaHei", sans-serif;
  font-size: 10.5pt; color: #111; background: #fff; margin: 0 auto; max-width: 190mm; line-height: 1.45; }
h1 { font-size: 17pt; margin: 0 0 2mm; } h2 { font-size: 12pt; margin: 5mm 0 1.5mm;
  border-bottom: 1.5pt solid #111; padding-bottom: 1mm; }
.meta { display: grid; grid-template-columns: 1fr 1fr; gap: 1mm 6mm; margin: 2mm 0 3mm; }
.meta b { display: inline-block; min-width: 22mm; }
table { width: 100%; border-collapse: collapse; margin: 1mm 0 2mm; page-break-inside: auto; }
tr { page-break-inside: avoid; } th, td { border: 0.6pt solid #777; padding: 0.8mm 1.5mm; text-align: left;
  vertical-align: top; } th { background: #e8e8e8; } td.n, th.n { text-align: right; }
.summary { margin: 0 0 1mm; } .note { font-size: 9pt; color: #444; margin: 0 0 1mm; }
.notes { white-space: pre-wrap; border: 0.6pt solid #777; padding: 2mm; min-height: 14mm; }
.sign { display: grid; grid-template-columns: 1fr 1fr; gap: 10mm; margin-top: 8mm; }
.sign div { border-top: 0.6pt solid #111; padding-top: 1mm; }
.bar { margin: 4mm 0; } .bar a, .bar button { margin-right: 4mm; font-size: 11pt; }
@media print { .bar { display: none; } body { max-width: none; } }
"""


def _esc(value: Any) -> str:
    return htmlmod.escape(str(value), quote=True)


def print_html(h: store.Handover, lang: str, names: Names, district: str = "") -> str:
    """The printable page of a handover (A4, print CSS): header, meta, notes, every section, signatures."""
    parts = [
        f'<!DOCTYPE html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">',
        f"<title>{_esc(t('ho.doc', lang))} #{h.id}</title><style>{PRINT_CSS}</style></head><body>",
        f'<div class="bar"><a href="/desk/handover/{h.id}{"?lang=en" if lang == "en" else ""}">'
        f"{_esc(t('ho.number', lang).format(n=h.id))}</a>"
        f'<a href="/desk/handover/{h.id}.pdf{"?lang=en" if lang == "en" else ""}">'
        f"{_esc(t('ho.pdf', lang))}</a></div>",
        f"<h1>{_esc(district)} {_esc(t('ho.doc', lang))} · #{h.id}</h1>",
        '<div class="meta">',
        f"<div><b>{_esc(t('ho.col.shift', lang))}</b> {_esc(shift_label(h.shift_start, h.shift_end))}</div>",
        f"<div><b>{_esc(t('ho.taken', lang))}</b> {_esc(local_dt(h.snapshot.get('taken_at')))}</div>",
        f"<div><b>{_esc(t('ho.col.by', lang))}</b> {_esc(h.created_by_name)} · "
        f"{_esc(local_dt(h.created_at))}</div>",
        f"<div><b>{_esc(t('ho.col.ack', lang))}</b> "
        + (
            _esc(t("ho.pending", lang))
            if h.pending
            else f"{_esc(h.acknowledged_by_name)} · {_esc(local_dt(h.acknowledged_at))}"
        )
        + "</div></div>",
        f'<h2>{_esc(t("ho.notes", lang))}</h2><div class="notes">{_esc(h.notes or "—")}</div>',
    ]
    if h.ack_notes:
        parts.append(f'<h2>{_esc(t("ho.ack_notes", lang))}</h2><div class="notes">{_esc(h.ack_notes)}</div>')
    for s in sections(h.snapshot, lang, names):
        parts.append(f"<h2>{_esc(s.title)}</h2>")
        if s.summary:
            parts.append(f'<p class="summary">{_esc(s.summary)}</p>')
        if s.note:
            parts.append(f'<p class="note">{_esc(s.note)}</p>')
        shown = s.rows if s.key == "open" else s.rows[:PRINT_ROWS]
        if len(shown) < len(s.rows):
            parts.append(
                f'<p class="note">{_esc(t("ho.print.more", lang).format(n=len(s.rows) - len(shown)))}</p>'
            )
        if shown:
            numeric = s.key == "open"
            head = "".join(
                f'<th class="{"n" if numeric and i else ""}">{_esc(c)}</th>' for i, c in enumerate(s.head)
            )
            body = "".join(
                "<tr>"
                + "".join(
                    f'<td class="{"n" if numeric and i else ""}">{_esc(c)}</td>' for i, c in enumerate(r)
                )
                + "</tr>"
                for r in shown
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif s.head:
            parts.append(f'<p class="note">{_esc(t("ho.empty", lang))}</p>')
    parts.append(
        f'<div class="sign"><div>{_esc(t("ho.sign.out", lang))}</div>'
        f"<div>{_esc(t('ho.sign.in', lang))}</div></div></body></html>"
    )
    return "".join(parts)


def pdf_bytes(document: str) -> bytes:
    """A printable page as PDF (WeasyPrint; the fonts from fontconfig: Debian's fonts-noto-cjk)."""
    from weasyprint import HTML  # imported when a PDF is asked for (about half a second)

    return bytes(HTML(string=document).write_pdf())


def install(server: Flask, engine: Engine, rules: Callable[[], Context | None]) -> None:
    """``/desk/handover/<id>/print`` (HTML) and ``/desk/handover/<id>.pdf``: for the desk's viewers only
    (the desk's login guard runs first; the role is the session's, never the request's)."""

    def document(hid: int) -> tuple[str, int] | Response:
        me = current_person()
        lang = pick_lang(request.args.get("lang"))
        if me is None:
            return Response("login_required\n", 401, mimetype="text/plain")
        if me.get("role") not in VIEWERS:
            return Response("not_allowed: shift leaders, leaders and admins\n", 403, mimetype="text/plain")
        with engine.connect() as conn:
            h = store.get(conn, hid)
            if h is None:
                return Response("unknown_handover\n", 404, mimetype="text/plain")
            names = names_of(conn, rules())
            row = conn.execute(select(District.name, District.name_en).limit(1)).first()
        title = "" if row is None else (row[0] if lang == "zh" else row[1])
        return print_html(h, lang, names, title), h.id

    @server.get("/desk/handover/<int:hid>/print")
    def handover_print(hid: int) -> Response:
        found = document(hid)
        if isinstance(found, Response):
            return found
        resp = Response(found[0], mimetype="text/html")
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @server.get("/desk/handover/<int:hid>.pdf")
    def handover_pdf(hid: int) -> Response:
        found = document(hid)
        if isinstance(found, Response):
            return found
        name = quote(f"handover-{found[1]}.pdf")
        return Response(
            pdf_bytes(found[0]),
            mimetype="application/pdf",
            headers={"Content-Disposition": f"attachment; filename={name}", "Cache-Control": "no-store"},
        )
