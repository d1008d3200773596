"""Handling time limits (处置时限) as the 立结案标准 writes them: a value and a typed unit.

Four units (domain.md §1.1): 紧急工作时 counts wall-clock hours (nights, weekends and holidays
too), 工作时 counts hours of the work calendar only, 工作日 counts working days (weekends and
statutory holidays excluded, 调休 days included) and 自然日 counts calendar days. Turning a limit
into a deadline is the work calendar's job; this module only names and parses limits.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

_LABELS_ZH = {
    "urgent_hours": "紧急工作时",
    "work_hours": "工作时",
    "work_days": "工作日",
    "natural_days": "自然日",
}

_LIMIT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(\S.*?)\s*$")


class LimitUnit(StrEnum):
    """The unit of a handling time limit."""

    URGENT_HOURS = "urgent_hours"
    WORK_HOURS = "work_hours"
    WORK_DAYS = "work_days"
    NATURAL_DAYS = "natural_days"

    @property
    def label_zh(self) -> str:
        """The unit as the 立结案标准 writes it, e.g. ``紧急工作时``."""
        return _LABELS_ZH[self.value]

    @classmethod
    def parse(cls, text: str) -> LimitUnit:
        """Parse a unit from its code (``work_days``) or its Chinese label (``工作日``)."""
        key = text.strip()
        unit = _UNIT_CODES.get(key.lower()) or _UNIT_LABELS.get(key)  # codes are ASCII, labels Chinese
        if unit is not None:
            return unit
        known = ", ".join(f"{u.label_zh} ({u.value})" for u in cls)
        raise ValueError(f"unknown time-limit unit {text!r}; use one of {known}")


_UNIT_CODES: dict[str, LimitUnit] = {u.value: u for u in LimitUnit}
_UNIT_LABELS: dict[str, LimitUnit] = {u.label_zh: u for u in LimitUnit}


@dataclass(frozen=True)
class TimeLimit:
    """A handling time limit such as 2紧急工作时 or 3工作日."""

    value: float
    unit: LimitUnit

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise ValueError(f"time-limit value must be a number, not {self.value!r}")
        if not math.isfinite(self.value) or self.value <= 0:
            raise ValueError(f"time-limit value must be greater than 0, not {self.value!r}")
        if not isinstance(self.unit, LimitUnit):
            object.__setattr__(self, "unit", LimitUnit.parse(str(self.unit)))

    @classmethod
    def parse(cls, text: str) -> TimeLimit:
        """Parse ``2紧急工作时``, ``4工作时``, ``3 work_days`` or ``0.5自然日``."""
        m = _LIMIT_RE.match(text)
        if not m:
            raise ValueError(
                f"bad time limit {text!r}; write a number and a unit, e.g. 2紧急工作时 or 3工作日"
            )
        return cls(float(m.group(1)), LimitUnit.parse(m.group(2)))

    def __str__(self) -> str:
        value = self.value
        shown = str(int(value)) if float(value).is_integer() else repr(float(value))
        return f"{shown}{self.unit.label_zh}"
