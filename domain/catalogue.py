"""The 部件/事件 catalogue: major and minor classes, filing conditions, time limits, departments.

Class codes follow CJ/T 214-2007 or GB/T 30428.2 (domain.md §1.2); both orderings ship as data in
``domain/data`` and a city selects one. The codes are configuration, not constants: 突发事件 is
major 04 in one ordering and 05 in the other, so code looks at the ``emergency`` flag, never at a
code. Every validation error names the file and the line.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from domain.timelimit import TimeLimit

DATA_DIR = Path(__file__).resolve().parent / "data"
EDITIONS: dict[str, str] = {
    "cjt214": "catalogue_cjt214.csv",
    "gbt30428": "catalogue_gbt30428.csv",
}
DEFAULT_DEPARTMENTS = "departments_110101.csv"
DEFAULT_BASIS = "catalogue_basis.csv"  # each class's 监管主体 and 法规依据 (issue 18), by kind, code and name

CLASS_COLUMNS = (
    "kind",
    "major_code",
    "major_name",
    "minor_code",
    "minor_name",
    "condition_code",
    "condition",
    "limit",
    "closing",
    "department",
    "emergency",
)
DEPARTMENT_COLUMNS = ("code", "name", "parent", "default")
BASIS_COLUMNS = ("kind", "code", "minor_name", "supervisor", "basis")
BASIS_MAX_CHARS = 200  # a 监管主体 or 法规依据 longer than this is refused (a wrong column, not a text)
DEPARTMENT_OPTIONAL = ("subcentre",)  # 1: a 街道分中心 that dispatches on to its units (default 0)

_CODE2 = re.compile(r"\d{2}")
_DEPT_CODE = re.compile(r"\S+")


class CatalogueError(ValueError):
    """A catalogue or department file is wrong, or a code is unknown; names file and line."""


class CaseKind(StrEnum):
    """Whether a case concerns a 部件 (component) or an 事件 (event)."""

    COMPONENT = "component"
    EVENT = "event"

    @property
    def label_zh(self) -> str:
        """部件 or 事件."""
        return "部件" if self is CaseKind.COMPONENT else "事件"

    @classmethod
    def parse(cls, text: str) -> CaseKind:
        """Parse ``component``/``event`` or ``部件``/``事件``."""
        key = text.strip()
        for kind in cls:
            if key.lower() == kind.value or key == kind.label_zh:
                return kind
        raise ValueError(f"unknown kind {text!r}; use component (部件) or event (事件)")


@dataclass(frozen=True)
class FilingCondition:
    """One 立案条件 of a minor class, with its handling time limit and 结案条件."""

    code: str  # 2 digits within the minor class
    text: str
    limit: TimeLimit
    closing: str


@dataclass(frozen=True)
class MinorClass:
    """A 小类 with its filing conditions, default responsible department and emergency flag."""

    kind: CaseKind
    major_code: str
    major_name: str
    minor_code: str
    name: str
    conditions: tuple[FilingCondition, ...]
    department: str
    emergency: bool

    @property
    def code(self) -> str:
        """The 4-digit class code: 大类 + 小类, e.g. ``0101``."""
        return self.major_code + self.minor_code

    @property
    def key(self) -> tuple[CaseKind, str]:
        """(kind, code): unique within a catalogue, since 部件 and 事件 reuse codes."""
        return (self.kind, self.code)


@dataclass(frozen=True)
class Department:
    """A responsible department (责任部门); ``default`` marks the shipped, replace-by-import list."""

    code: str
    name: str
    parent: str | None
    default: bool
    subcentre: bool = False  # a 街道分中心 (三级平台): receives dispatches and dispatches on to its units


@dataclass(frozen=True)
class ClassBasis:
    """What the local 立结案标准 says of a 小类 besides its conditions: its 监管主体 (the authority that
    supervises it) and its 法规依据 (the regulations it rests on); empty text when not given."""

    supervisor: str
    basis: str


class Catalogue:
    """The classes of one edition and the departments they map to."""

    def __init__(
        self,
        edition: str,
        classes: Iterable[MinorClass],
        departments: Iterable[Department],
        basis: dict[tuple[CaseKind, str], ClassBasis] | None = None,
    ) -> None:
        self.edition = edition
        self.basis: dict[tuple[CaseKind, str], ClassBasis] = dict(basis or {})
        self.classes: tuple[MinorClass, ...] = tuple(classes)
        self.departments: dict[str, Department] = {d.code: d for d in departments}
        self._by_key: dict[tuple[CaseKind, str], MinorClass] = {c.key: c for c in self.classes}
        self._units: dict[str, tuple[str, ...]] = {}
        for d in self.departments.values():
            if d.parent is not None:
                self._units[d.parent] = (*self._units.get(d.parent, ()), d.code)

    def basis_of(self, kind: CaseKind | str, code: str) -> ClassBasis | None:
        """The 监管主体 and 法规依据 of a class (None: the city gave none for it)."""
        try:
            return self.basis.get((CaseKind.parse(str(kind)), str(code)))
        except ValueError:
            return None

    def units_of(self, code: str) -> tuple[str, ...]:
        """The departments whose parent is this one (a sub-centre's units), in list order."""
        return self._units.get(code, ())

    def is_subcentre(self, code: str | None) -> bool:
        """Whether a department is a 街道分中心 that dispatches on to its units (二级派遣)."""
        dept = self.departments.get(code) if code else None
        return dept is not None and dept.subcentre

    @property
    def subcentres(self) -> tuple[str, ...]:
        """The codes of the sub-centres, in list order."""
        return tuple(d.code for d in self.departments.values() if d.subcentre)

    def __len__(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        return (
            f"Catalogue({self.edition!r}, {len(self.classes)} classes, {len(self.departments)} departments)"
        )

    def minor(self, kind: CaseKind | str, code: str) -> MinorClass:
        """The minor class with this 4-digit code (e.g. ``0101``) of this kind."""
        found = self._by_key.get((kind, code))  # type: ignore[arg-type]  # fast path: exact key
        if found is not None:
            return found
        try:
            case_kind = CaseKind.parse(str(kind))
        except ValueError as exc:
            raise CatalogueError(str(exc)) from None
        found = self._by_key.get((case_kind, str(code).strip()))
        if found is None:
            raise CatalogueError(
                f"unknown class code {code!r} for {case_kind.value} ({case_kind.label_zh}) "
                f"in catalogue {self.edition!r}"
            )
        return found

    def condition(self, kind: CaseKind | str, code: str, condition_code: str) -> FilingCondition:
        """One filing condition (2-digit code) of a minor class."""
        cls = self.minor(kind, code)
        for cond in cls.conditions:
            if cond.code == condition_code:
                return cond
        known = ", ".join(c.code for c in cls.conditions)
        raise CatalogueError(
            f"unknown filing condition {condition_code!r} for {cls.kind.value} {cls.code} {cls.name} "
            f"(known: {known})"
        )

    def majors(self, kind: CaseKind | str) -> dict[str, str]:
        """The major classes of a kind: code → name, in catalogue order."""
        try:
            case_kind = CaseKind.parse(str(kind))
        except ValueError as exc:
            raise CatalogueError(str(exc)) from None
        return {c.major_code: c.major_name for c in self.classes if c.kind is case_kind}

    def emergency_classes(self) -> tuple[MinorClass, ...]:
        """The minor classes flagged as 突发事件, whatever their code."""
        return tuple(c for c in self.classes if c.emergency)

    def by_department(self, code: str) -> tuple[MinorClass, ...]:
        """The minor classes whose default responsible department is this one."""
        if code not in self.departments:
            raise CatalogueError(f"unknown department {code!r}")
        return tuple(c for c in self.classes if c.department == code)


# ---------------------------------------------------------------------------------------------
# Component instance codes (标识码)


def component_instance_code(adcode: str, major: str, minor: str, serial: int) -> str:
    """The 16-digit 部件 identifier: 6-digit county adcode + 2 + 2 + 6-digit serial."""
    _check_adcode(adcode)
    for label, value in (("major", major), ("minor", minor)):
        if not _is_code2(value):
            raise CatalogueError(f"component code: {label} class {value!r} is not a 2-digit code (01–99)")
    if isinstance(serial, bool) or not isinstance(serial, int) or not 1 <= serial <= 999_999:
        raise CatalogueError(f"component code: serial {serial!r} is not an integer from 1 to 999999")
    return f"{adcode}{major}{minor}{serial:06d}"


def parse_component_instance_code(code: str) -> tuple[str, str, str, int]:
    """Split a 16-digit 部件 identifier into (adcode, major, minor, serial)."""
    text = str(code).strip()
    if len(text) != 16 or not text.isdigit():
        raise CatalogueError(
            f"component code {code!r}: a 部件 identifier has 16 digits "
            "(6 district + 2 major + 2 minor + 6 serial), e.g. 3205080101000001"
        )
    adcode, major, minor, serial = text[:6], text[6:8], text[8:10], int(text[10:])
    _check_adcode(adcode)
    for label, value in (("major", major), ("minor", minor)):
        if not _is_code2(value):
            raise CatalogueError(f"component code {code!r}: {label} class {value!r} is not 01–99")
    if serial == 0:
        raise CatalogueError(f"component code {code!r}: serial 000000 is not used; serials start at 1")
    return adcode, major, minor, serial


def _check_adcode(adcode: str) -> None:
    if not isinstance(adcode, str) or len(adcode) != 6 or not adcode.isdigit():
        raise CatalogueError(f"component code: district {adcode!r} is not a 6-digit adcode, e.g. 110101")
    if adcode.endswith("00"):
        raise CatalogueError(
            f"component code: {adcode} is a province or city code; use a county-level (区/县) adcode"
        )


def _is_code2(value: object) -> bool:
    return isinstance(value, str) and bool(_CODE2.fullmatch(value)) and value != "00"


# ---------------------------------------------------------------------------------------------
# Loading


def load_catalogue(
    edition: str = "cjt214",
    departments: Path | None = None,
    classes: Path | None = None,
    basis: Path | None = None,
) -> Catalogue:
    """Load and validate an edition's classes (shipped or given CSV), the department list and the
    classes' 监管主体 and 法规依据 (shipped or given CSV, :func:`load_basis`)."""
    if classes is None:
        if edition not in EDITIONS:
            shipped = ", ".join(EDITIONS)
            raise CatalogueError(f"unknown catalogue edition {edition!r}; shipped editions: {shipped}")
        classes = DATA_DIR / EDITIONS[edition]
    depts = load_departments(departments if departments is not None else DATA_DIR / DEFAULT_DEPARTMENTS)
    found = _load_classes(Path(classes), depts)
    extra = load_basis(basis if basis is not None else DATA_DIR / DEFAULT_BASIS, found)
    return Catalogue(edition, found, depts.values(), extra)


def load_basis(path: Path, classes: Iterable[MinorClass]) -> dict[tuple[CaseKind, str], ClassBasis]:
    """The 监管主体 and 法规依据 of the classes (``kind,code,minor_name,supervisor,basis``). A row
    applies to the class of its kind and code whose name is ``minor_name``, so one file can serve both
    orderings (a row of a class this catalogue does not have is skipped); a bad row names its line."""
    path = Path(path)
    named = {(c.kind, c.code): c.name for c in classes}
    out: dict[tuple[CaseKind, str], ClassBasis] = {}
    lines: dict[tuple[CaseKind, str], int] = {}
    for line, row in _rows(path, BASIS_COLUMNS):

        def fail(msg: str, line: int = line) -> CatalogueError:
            return CatalogueError(f"{path.name}: line {line}: {msg}")

        try:
            kind = CaseKind.parse(row["kind"])
        except ValueError as exc:
            raise fail(str(exc)) from None
        code = row["code"]
        if len(code) != 4 or not _is_code2(code[:2]) or not _is_code2(code[2:]):
            raise fail(f"code {code!r} is not a 4-digit class code")
        if not row["minor_name"]:
            raise fail("empty minor_name")
        for column in ("supervisor", "basis"):
            if len(row[column]) > BASIS_MAX_CHARS:
                raise fail(f"{column} is longer than {BASIS_MAX_CHARS} characters")
        if named.get((kind, code)) != row["minor_name"]:
            continue  # a class of the other ordering, or one this city does not use
        if (kind, code) in out:
            first = lines[(kind, code)]
            raise fail(f"{kind.value} {code} {row['minor_name']} is given twice (first on line {first})")
        lines[(kind, code)] = line
        out[(kind, code)] = ClassBasis(row["supervisor"], row["basis"])
    return out


def load_departments(path: Path) -> dict[str, Department]:
    """Load and validate a department list (``code,name,parent,default`` and optionally
    ``subcentre``): code → Department."""
    path = Path(path)
    out: dict[str, Department] = {}
    lines: dict[str, int] = {}
    for line, row in _rows(path, DEPARTMENT_COLUMNS, DEPARTMENT_OPTIONAL):

        def fail(msg: str, line: int = line) -> CatalogueError:
            return CatalogueError(f"{path.name}: line {line}: {msg}")

        code = row["code"]
        if not _DEPT_CODE.fullmatch(code):
            raise fail(f"department code {code!r} is empty or contains spaces")
        if code in out:
            raise fail(f"duplicate department code {code!r} (first on line {lines[code]})")
        if not row["name"]:
            raise fail(f"department {code!r} has no name")
        out[code] = Department(
            code=code,
            name=row["name"],
            parent=row["parent"] or None,
            default=_flag(row["default"], "default", fail),
            subcentre=_flag(row.get("subcentre") or "0", "subcentre", fail),
        )
        lines[code] = line
    if not out:
        raise CatalogueError(f"{path.name}: line 1: no departments")
    parents = {d.parent for d in out.values()}
    for code, dept in out.items():
        if dept.subcentre and code not in parents:
            raise CatalogueError(f"{path.name}: line {lines[code]}: sub-centre {code!r} has no units")
    for code, dept in out.items():
        if dept.parent is None:
            continue
        if dept.parent not in out:
            raise CatalogueError(
                f"{path.name}: line {lines[code]}: unknown parent department {dept.parent!r}"
            )
        seen = [code]
        parent: str | None = dept.parent
        while parent is not None:
            if parent in seen:
                chain = " → ".join([*seen, parent])
                raise CatalogueError(f"{path.name}: line {lines[code]}: parent chain loops ({chain})")
            seen.append(parent)
            parent = out[parent].parent
    return out


@dataclass
class _Draft:
    line: int
    kind: CaseKind
    major_code: str
    major_name: str
    minor_code: str
    name: str
    department: str
    emergency: bool
    conditions: dict[str, tuple[int, FilingCondition, tuple[str, ...]]]


def _load_classes(path: Path, departments: dict[str, Department]) -> list[MinorClass]:
    drafts: dict[tuple[CaseKind, str], _Draft] = {}
    majors: dict[tuple[CaseKind, str], tuple[int, str]] = {}
    for line, row in _rows(path, CLASS_COLUMNS):

        def fail(msg: str, line: int = line) -> CatalogueError:
            return CatalogueError(f"{path.name}: line {line}: {msg}")

        try:
            kind = CaseKind.parse(row["kind"])
        except ValueError as exc:
            raise fail(str(exc)) from None
        major, minor = row["major_code"], row["minor_code"]
        for column in ("major_code", "minor_code"):
            if not _is_code2(row[column]):
                raise fail(f"{column} {row[column]!r} is not a 2-digit code (01–99)")
        for column in ("major_name", "minor_name"):
            if not row[column]:
                raise fail(f"empty {column}")
        label = f"{kind.value} {major}{minor} {row['minor_name']}"

        seen_major = majors.setdefault((kind, major), (line, row["major_name"]))
        if seen_major[1] != row["major_name"]:
            raise fail(
                f"{kind.value} major class {major} is named {row['major_name']!r} here "
                f"but {seen_major[1]!r} on line {seen_major[0]}"
            )

        department = row["department"]
        if not department:
            raise fail(f"{label}: missing department; every minor class maps to one department")
        if department not in departments:
            raise fail(f"unknown department {department!r}")
        emergency = _flag(row["emergency"], "emergency", fail)

        cond_code, cond_text = row["condition_code"], row["condition"]
        if not cond_code and not cond_text:
            raise fail(f"{label} has no filing condition (立案条件); give at least one")
        if not _is_code2(cond_code):
            raise fail(f"condition_code {cond_code!r} is not a 2-digit code (01–99)")
        if not cond_text:
            raise fail(f"{label}: condition {cond_code} has no text")
        if not row["closing"]:
            raise fail(f"{label}: condition {cond_code} has no closing condition (结案条件)")
        try:
            limit = TimeLimit.parse(row["limit"])
        except ValueError as exc:
            raise fail(f"{label}: condition {cond_code}: {exc}") from None

        draft = drafts.get((kind, major + minor))
        if draft is None:
            draft = _Draft(
                line, kind, major, row["major_name"], minor, row["minor_name"], department, emergency, {}
            )
            drafts[(kind, major + minor)] = draft
        else:
            if draft.name != row["minor_name"]:
                raise fail(
                    f"{kind.value} {major}{minor} is named {row['minor_name']!r} here "
                    f"but {draft.name!r} on line {draft.line}"
                )
            if draft.department != department:
                raise fail(
                    f"{label}: department {department!r} differs from {draft.department!r} on line "
                    f"{draft.line}; a minor class maps to exactly one department"
                )
            if draft.emergency != emergency:
                raise fail(f"{label}: emergency flag differs from line {draft.line}")
        values = tuple(row[c] for c in CLASS_COLUMNS)
        if cond_code in draft.conditions:
            first_line, _, first_values = draft.conditions[cond_code]
            if first_values == values:
                raise fail(f"duplicate row (same as line {first_line})")
            raise fail(f"{label}: duplicate condition code {cond_code} (first on line {first_line})")
        draft.conditions[cond_code] = (
            line,
            FilingCondition(code=cond_code, text=cond_text, limit=limit, closing=row["closing"]),
            values,
        )
    if not drafts:
        raise CatalogueError(f"{path.name}: line 1: no classes")
    return [
        MinorClass(
            kind=d.kind,
            major_code=d.major_code,
            major_name=d.major_name,
            minor_code=d.minor_code,
            name=d.name,
            conditions=tuple(cond for _, cond, _ in d.conditions.values()),
            department=d.department,
            emergency=d.emergency,
        )
        for d in drafts.values()
    ]


def _flag(value: str, column: str, fail: Callable[[str], CatalogueError]) -> bool:
    if value in ("0", "1"):
        return value == "1"
    raise fail(f"{column} must be 0 or 1, not {value!r}")


def _rows(
    path: Path, columns: tuple[str, ...], optional: tuple[str, ...] = ()
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number where the row starts, stripped values) after checking the header;
    ``optional`` columns are yielded when the header has them."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise CatalogueError(f"{path.name}: line 1: empty file; expected columns {','.join(columns)}")
            names = [h.strip() for h in header]
            missing = [c for c in columns if c not in names]
            if missing:
                raise CatalogueError(
                    f"{path.name}: line 1: missing column(s) {', '.join(missing)}; "
                    f"expected {','.join(columns)}"
                )
            index = {c: names.index(c) for c in (*columns, *optional) if c in names}
            while True:
                line = reader.line_num + 1
                try:
                    fields = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise CatalogueError(f"{path.name}: line {line}: malformed CSV ({exc})") from None
                if not any(f.strip() for f in fields):
                    continue
                if len(fields) != len(names):
                    raise CatalogueError(
                        f"{path.name}: line {line}: {len(fields)} fields, the header has {len(names)}"
                    )
                yield line, {c: fields[i].strip() for c, i in index.items()}
    except FileNotFoundError:
        raise CatalogueError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise CatalogueError(f"{path.name}: not UTF-8 text ({exc.reason})") from None
