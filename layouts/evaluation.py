"""Evaluation pages (综合评价, issue 8 item 9): rankings of a level over a period with A–E grades.

The page is built from a :class:`dashboard.evaluation_data.Ranking`; the controls (level, period,
custom range) re-render the body through one read-only callback (``layouts/people.py``),
and the export link follows them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from dash import dash_table, dcc, html

from dashboard import ids
from dashboard.evaluation_data import LEVELS, PERIODS, SCOPED, Ranking, grade_counts, rate_label
from dashboard.i18n import t
from domain.evaluation import COUNTER_LABELS, GRADE_COLOURS, NO_GRADE_COLOUR
from layouts.chrome import desk_title, menu

DataTable = dash_table.DataTable  # type: ignore[attr-defined]  # generated at import

GRADES = ("A", "B", "C", "D", "E")
PAGE_ROWS = 25


def export_href(level: str, start: str, end: str, lang: str, street: str | None = None) -> str:
    """The CSV link of a level and period (and street, for grids and communities)."""
    q = {"level": level, "from": start, "to": end, "lang": lang}
    if street:
        q["street"] = street
    return "/evaluation/export.csv?" + urlencode(q)


def _pct(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return f"{float(v) * 100:.1f}%"


def _count_label(name: str, lang: str) -> str:
    if name == "to_close":
        return "应结案数" if lang == "zh" else "to close"
    return COUNTER_LABELS.get(name, name) if lang == "zh" else name.replace("_", " ")


def table_rows(r: Ranking, lang: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """DataTable columns and rows: rank, name, code, score, grade, the rates and key counts."""
    cols: list[dict[str, Any]] = [
        {"name": t("eval.rank", lang), "id": "rank", "type": "numeric"},
        {"name": t("eval.name", lang), "id": "name"},
        {"name": t("eval.code", lang), "id": "object_id"},
        {"name": t("eval.score", lang), "id": "score", "type": "numeric"},
        {"name": t("eval.grade", lang), "id": "grade"},
    ]
    cols += [{"name": rate_label(n, lang), "id": n} for n in r.rates]
    cols += [{"name": _count_label(n, lang), "id": n, "type": "numeric"} for n in r.counts]
    cols.append({"name": t("eval.missing", lang), "id": "missing"})
    rows: list[dict[str, Any]] = []
    shown = ["rank", "name", "object_id", "score", "grade", "missing", *r.rates, *r.counts]
    for rec in r.frame[shown].to_dict("records"):  # only the shown columns (5,604 grids × 60 is slow)
        score = rec["score"]
        row: dict[str, Any] = {
            "rank": int(rec["rank"]),
            "name": rec["name"],
            "object_id": rec["object_id"],
            "score": None if score is None or score != score else round(float(score), 2),
            "grade": rec["grade"] if isinstance(rec["grade"], str) else "–",
            "missing": rec["missing"],
        }
        for n in r.rates:
            row[n] = _pct(rec[n])
        for n in r.counts:
            row[n] = int(rec[n])
        rows.append(row)
    return cols, rows


def _grade_styles() -> list[dict[str, Any]]:
    styles: list[dict[str, Any]] = [
        {
            "if": {"filter_query": f'{{grade}} = "{g}"', "column_id": "grade"},
            "backgroundColor": c,
            "color": "#0b1220",
            "fontWeight": "700",
            "textAlign": "center",
        }
        for g, c in GRADE_COLOURS.items()
    ]
    styles.append(
        {
            "if": {"filter_query": '{grade} = "–"', "column_id": "grade"},
            "backgroundColor": NO_GRADE_COLOUR,
            "textAlign": "center",
        }
    )
    return styles


def body(r: Ranking, lang: str) -> list[Any]:
    """The part the controls change: period line, grade summary, table, export link."""
    cols, rows = table_rows(r, lang)
    counts = grade_counts(r)
    summary = [
        html.Span(
            [html.B(g), f" {counts[g]}"],
            className="gw-eval-gradecount",
            style={"background": GRADE_COLOURS.get(g, NO_GRADE_COLOUR)},
        )
        for g in (*GRADES, "–")
    ]
    p = r.period
    return [
        html.Div(
            [
                html.Span(
                    f"{t('eval.level.' + r.level.value, lang)} · {p.start.isoformat()} – {p.end.isoformat()}"
                    f" · {t('eval.objects', lang)} {len(rows):,}",
                    className="gw-eval-period",
                ),
                html.Div(summary, className="gw-eval-grades"),
                html.A(
                    t("eval.export", lang),
                    id=ids.EVAL_EXPORT,
                    href=export_href(r.level.value, p.start.isoformat(), p.end.isoformat(), lang, r.within),
                    className="gw-eval-export",
                ),
            ],
            className="gw-eval-bar",
        ),
        DataTable(
            id=ids.EVAL_TABLE,
            columns=cols,
            data=rows,
            page_size=PAGE_ROWS,
            sort_action="native",
            style_as_list_view=True,
            style_table={"overflowX": "auto"},
            style_header={"backgroundColor": "#111b2e", "color": "#e8eef9", "fontWeight": "700"},
            style_cell={
                "backgroundColor": "#0b1220",
                "color": "#e8eef9",
                "fontFamily": "inherit",
                "fontSize": "15px",
                "padding": "4px 8px",
                "border": "1px solid #24324d",
            },
            style_data_conditional=_grade_styles(),
            style_cell_conditional=[{"if": {"column_id": "name"}, "textAlign": "left"}],
        ),
        html.P(t("eval.note", lang), className="gw-eval-note"),
    ]


def layout(r: Ranking, *, lang: str, streets: Mapping[str, str], role: str | None = None) -> html.Div:
    """The evaluation page of a ranking (controls set to its level, period and street)."""
    p = r.period
    return html.Div(
        [
            html.Header(
                [
                    html.H1(
                        [
                            html.Span(t("eval.title", lang), className="gw-district"),
                            html.Span(desk_title(role, lang), className="gw-title"),
                        ]
                    ),
                    menu(role, lang, "/evaluation"),
                ],
                className="gw-header",
            ),
            html.Div(
                [
                    dcc.RadioItems(
                        id=ids.EVAL_LEVEL,
                        options=[
                            {"label": t("eval.level." + k.value, lang), "value": k.value} for k in LEVELS
                        ],
                        value=r.level.value,
                        inline=True,
                        className="gw-eval-levels",
                    ),
                    dcc.RadioItems(
                        id=ids.EVAL_PERIOD,
                        options=[{"label": t("eval.period." + k, lang), "value": k} for k in PERIODS],
                        value=p.kind,
                        inline=True,
                        className="gw-eval-periods",
                    ),
                    dcc.DatePickerRange(
                        id=ids.EVAL_RANGE,
                        start_date=p.start.isoformat(),
                        end_date=p.end.isoformat(),
                        display_format="YYYY-MM-DD",
                        first_day_of_week=1,
                        minimum_nights=0,
                    ),
                    dcc.Dropdown(
                        id=ids.EVAL_STREET,
                        options=[
                            {"label": f"{name} {code}", "value": code}
                            for code, name in sorted(streets.items())
                        ],
                        value=r.within,
                        placeholder=t("eval.all_streets", lang),
                        clearable=True,
                        className="gw-eval-street",
                        style={} if r.level in SCOPED else {"display": "none"},
                    ),
                    dcc.Store(id=ids.EVAL_LANG, data=lang),
                ],
                className="gw-eval-controls",
            ),
            html.Div(body(r, lang), id=ids.EVAL_BODY, className="gw-eval-body"),
        ],
        className="gw-page gw-desk gw-eval",
        lang="zh-CN" if lang == "zh" else "en",
    )


def error(message: str, lang: str) -> html.Div:
    """A message instead of a table (a bad level or period in the address)."""
    return html.Div(
        [html.H1(t("eval.title", lang)), html.P(message, className="gw-eval-error")],
        className="gw-page gw-desk gw-eval",
    )
