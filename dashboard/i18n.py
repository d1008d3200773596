"""The UI text catalogue, Chinese and English; Chinese is the default."""

from __future__ import annotations

DEFAULT_LANG = "zh"
LANGS = ("zh", "en")

CATALOGUE: dict[str, dict[str, str]] = {
    "app.title": {"zh": "GridWall 网格化城市管理监督指挥", "en": "GridWall grid city management command"},
    "page.wall": {"zh": "监督指挥大屏", "en": "Command wall"},
    "page.desk": {"zh": "领导桌面", "en": "Leaders' desk"},
    "page.not_found": {"zh": "页面不存在", "en": "Page not found"},
    "count.streets": {"zh": "街道", "en": "Streets"},
    "count.communities": {"zh": "社区", "en": "Communities"},
    "count.grids": {"zh": "单元网格", "en": "Unit grids"},
    "count.areas": {"zh": "责任网格", "en": "Responsibility areas"},
    "streets.title": {"zh": "街道与单元网格", "en": "Streets and unit grids"},
    "streets.grids": {"zh": "网格", "en": "grids"},
    "map.grid": {"zh": "单元网格", "en": "Unit grid"},
    "map.street": {"zh": "街道", "en": "Street"},
    "map.community": {"zh": "社区", "en": "Community"},
    "map.level": {"zh": "管理等级", "en": "Level"},
    "map.area": {"zh": "面积", "en": "Area"},
    "note.generated": {
        "zh": "街道与社区为生成的片区，非真实边界",
        "en": "Streets and communities are generated zones, not real boundaries",
    },
    "note.offline": {"zh": "离线地图 · WGS-84", "en": "Offline map · WGS-84"},
    "level.general": {"zh": "一般", "en": "General"},
    "level.key": {"zh": "重点", "en": "Key"},
    "level.comprehensive": {"zh": "综合治理", "en": "Comprehensive"},
    "wall.cases": {"zh": "在办案件", "en": "Open cases"},
    "wall.supervisors": {"zh": "监督员", "en": "Supervisors"},
    "wall.simulated": {"zh": "模拟数据", "en": "SIMULATED DATA"},
    "wall.live": {"zh": "实时", "en": "Live"},
    "wall.stale": {"zh": "数据中断", "en": "Data stale"},
    "wall.connecting": {"zh": "连接中", "en": "Connecting"},
    "wall.stages": {"zh": "案件阶段", "en": "Case stages"},
    "wall.queue": {"zh": "临近超期", "en": "Nearest deadlines"},
    "wall.queue.empty": {"zh": "暂无在办案件", "en": "No open cases"},
    "wall.overdue": {"zh": "已超期", "en": "overdue"},
    "wall.ticker": {"zh": "最新动态", "en": "Latest"},
    "heat.open": {"zh": "网格热力：在办案件", "en": "Grid heat: open cases"},
    "heat.overdue": {"zh": "网格热力：超期案件", "en": "Grid heat: overdue cases"},
    "heat.patrol": {
        "zh": "网格热力：今日巡查（红=未巡）",
        "en": "Grid heat: patrolled today (red: not yet)",
    },
    "scene.overview": {"zh": "全区概览", "en": "District overview"},
    "scene.supervisors": {"zh": "监督员在岗巡查", "en": "Supervisors on patrol"},
    "wall.ranking": {"zh": "街道综合评价（本月）", "en": "Streets by CJ/T 292 score (month)"},
    "wall.hours": {"zh": "今日分时", "en": "Today by hour"},
    "wall.hours.reported": {"zh": "上报", "en": "reported"},
    "wall.hours.closed": {"zh": "结案", "en": "closed"},
    "wall.alert.emergency": {"zh": "突发事件", "en": "Emergency"},
    "wall.alert.nearest": {"zh": "最近监督员", "en": "Nearest supervisors"},
    "kpi.reported": {"zh": "今日上报", "en": "Reported today"},
    "kpi.filed": {"zh": "立案", "en": "Filed"},
    "kpi.dispatched": {"zh": "派遣", "en": "Dispatched"},
    "kpi.handling": {"zh": "处置中", "en": "In handling"},
    "kpi.closed": {"zh": "结案", "en": "Closed"},
    "kpi.close_rate": {"zh": "结案率", "en": "Closing rate"},
    "kpi.on_time_rate": {"zh": "按期结案率", "en": "On-time closing"},
    "kpi.on_duty": {"zh": "在岗监督员", "en": "Supervisors on duty"},
    "kpi.overdue_open": {"zh": "超期在办", "en": "Overdue open"},
    "kpi.avg_close_h": {"zh": "平均结案时长(小时)", "en": "Avg. hours to close"},
    "unit.hours": {"zh": "小时", "en": "h"},
    "status.on_duty": {"zh": "在岗", "en": "On duty"},
    "status.stationary": {"zh": "长时间静止", "en": "Stationary"},
    "status.out_of_area": {"zh": "越界", "en": "Out of area"},
    "status.offline": {"zh": "离线", "en": "Offline"},
    "stage.待受理": {"zh": "待受理", "en": "To accept"},
    "stage.待核实": {"zh": "待核实", "en": "To verify"},
    "stage.待立案": {"zh": "待立案", "en": "To file"},
    "stage.待派遣": {"zh": "待派遣", "en": "To dispatch"},
    "stage.处置中": {"zh": "处置中", "en": "Handling"},
    "stage.挂账": {"zh": "挂账", "en": "Suspended"},
    "stage.待核查": {"zh": "待核查", "en": "To check"},
    "stage.待结案": {"zh": "待结案", "en": "To close"},
    "action.report": {"zh": "上报", "en": "reported"},
    "action.accept": {"zh": "受理", "en": "accepted"},
    "action.verify": {"zh": "核实", "en": "verified"},
    "action.file": {"zh": "立案", "en": "filed"},
    "action.void": {"zh": "作废", "en": "voided"},
    "action.dispatch": {"zh": "派遣", "en": "dispatched"},
    "action.request_extension": {"zh": "申请延期", "en": "asked extension"},
    "action.request_suspension": {"zh": "申请挂账", "en": "asked suspension"},
    "action.request_return": {"zh": "申请回退", "en": "asked return"},
    "action.approve": {"zh": "审批通过", "en": "approved"},
    "action.reject": {"zh": "审批不通过", "en": "refused"},
    "action.resume": {"zh": "恢复处置", "en": "resumed"},
    "action.feedback": {"zh": "处置反馈", "en": "handled"},
    "action.check": {"zh": "核查", "en": "checked"},
    "action.close": {"zh": "结案", "en": "closed"},
    "action.urge": {"zh": "督办", "en": "urged"},
    "kiosk.denied": {"zh": "大屏令牌无效或缺失", "en": "Missing or invalid kiosk token"},
    "empty.district": {
        "zh": "尚未建立辖区：运行 python app.py init",
        "en": "No district built yet: run python app.py init",
    },
}


def t(key: str, lang: str = DEFAULT_LANG) -> str:
    """The text of ``key`` in ``lang`` (falls back to Chinese, then to the key itself)."""
    entry = CATALOGUE.get(key)
    if entry is None:
        return key
    return entry.get(lang) or entry.get(DEFAULT_LANG) or key


def pick_lang(value: str | None) -> str:
    """A supported language from a query/cookie value (Chinese by default)."""
    return value if value in LANGS else DEFAULT_LANG
