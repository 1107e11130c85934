"""``build_topology``: column data in, a validated ``Topology`` out, every problem listed.

Input is plain columns (lists or numpy arrays of str / bool / float / None), the form both
file readers and the store produce; no per-meter Python object is created besides the id
strings themselves. Checks run column-wise: one joined-string regex for a million ids,
dict lookups through ``map`` for references, numpy for the tree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gridwatch.core.errors import TopologyError
from gridwatch.topology._model import (
    CHAIN_SEPARATOR,
    CHANNELS,
    DEVICE_KINDS,
    KIND_CODE,
    LANGUAGES,
    NO_PARENT,
    SUBSTATION,
    TRANSFORMER,
    CustomerTable,
    DeviceTable,
    MeterTable,
    Topology,
)
from gridwatch.topology._switching import operated_tree
from gridwatch.topology._tree import bfs_levels, children_csr

Column = Sequence[Any] | npt.NDArray[Any]
Columns = Mapping[str, Column]
# (table, row) -> where the row came from, e.g. "devices.csv:14" or "devices[12]".
Locate = Callable[[str, int], str]

DEVICE_COLUMNS: Final = (
    "id", "parent", "kind", "zone", "name", "normally_open", "is_open", "has_scada",
    "lat", "lon", "alt_parent", "area",
)  # fmt: skip
METER_COLUMNS: Final = ("id", "device", "customer")
CUSTOMER_COLUMNS: Final = (
    "id", "account_no", "name", "phone", "language", "channels", "critical",
)  # fmt: skip
REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "devices": ("id", "parent", "kind", "zone"),
    "meters": ("id", "device"),
    "customers": ("id", "account_no"),
}
MAX_TEXT_CHARS: Final = 256  # names, account numbers
MAX_WARNINGS: Final = 100
TIE_KINDS: Final = frozenset(
    KIND_CODE[k] for k in ("breaker", "recloser", "sectionalizer", "switch")
)

_ID_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_ZONE_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ALL_IDS_RE: Final = re.compile(r"[A-Za-z0-9_.:\-\n]*")
_ALL_ZONES_RE: Final = re.compile(r"[A-Za-z0-9_\-\n]*")
_PHONE_RE: Final = re.compile(r"\+[1-9][0-9]{6,14}")
_ALL_PHONES_RE: Final = re.compile(rf"{_PHONE_RE.pattern}(?:\n{_PHONE_RE.pattern})*")
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")
_TRUE: Final = frozenset({"true", "t", "yes", "y", "1"})
_FALSE: Final = frozenset({"false", "f", "no", "n", "0"})


def default_locate(table: str, row: int) -> str:
    return f"{table}[{row}]"


class _Table:
    """One input table: typed column access that records problems instead of raising."""

    def __init__(self, name: str, columns: Columns, problems: list[str], locate: Locate) -> None:
        self.name = name
        self.problems = problems
        self.locate = locate
        self.columns = columns
        self.n = 0
        if not isinstance(columns, Mapping):
            problems.append(f"{name}: expected columns (a mapping of name to values)")
            self.columns = {}
            return
        lengths = {key: len(values) for key, values in columns.items()}
        missing = [c for c in REQUIRED[name] if c not in columns]
        if missing:
            problems.append(f"{name}: missing column(s) {', '.join(missing)}")
        if lengths:
            self.n = lengths.get("id", max(lengths.values()))
        uneven = sorted(k for k, length in lengths.items() if length != self.n)
        if uneven:
            problems.append(f"{name}: column(s) {', '.join(uneven)} do not have {self.n} rows")
            self.columns = {k: v for k, v in columns.items() if lengths[k] == self.n}

    def where(self, row: int) -> str:
        return self.locate(self.name, row)

    def text(self, column: str, *, allow_empty: bool = True) -> list[str]:
        """Strings; None becomes "". Wrong types are problems (and become "")."""
        values = self.columns.get(column)
        if values is None:
            return [""] * self.n
        out: list[Any] = values.tolist() if isinstance(values, np.ndarray) else list(values)
        try:
            joined = "".join(out)  # fast path: every value is already a str
        except TypeError:
            joined = None
        if joined is None:
            for i, v in enumerate(out):
                if v is None:
                    out[i] = ""
                elif not isinstance(v, str):
                    self.problems.append(
                        f"{self.where(i)}: {column}: expected a string, got {type(v).__name__}"
                    )
                    out[i] = ""
        if not allow_empty and "" in out:
            for i, v in enumerate(out):
                if v == "":
                    self.problems.append(f"{self.where(i)}: {column} is empty")
        return out

    def ids(self, column: str, pattern: re.Pattern[str], fast: re.Pattern[str]) -> list[str]:
        values = self.text(column, allow_empty=False)
        joined = "\n".join(values)
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
        if (
            fast.fullmatch(joined)
            and joined.count("\n") == max(len(values) - 1, 0)
            and (lengths.size == 0 or (lengths.min() >= 1 and lengths.max() <= 64))
        ):
            return values
        for i, v in enumerate(values):
            if v and not pattern.fullmatch(v):
                shown = v if len(v) <= 80 else v[:77] + "..."
                self.problems.append(
                    f"{self.where(i)}: {column} {shown!r} is not a valid id ({pattern.pattern})"
                )
        return values

    def free_text(self, column: str, *, allow_empty: bool = True) -> list[str]:
        values = self.text(column, allow_empty=allow_empty)
        if any(len(v) > MAX_TEXT_CHARS for v in values) or _CONTROL_RE.search("".join(values)):
            for i, v in enumerate(values):
                if len(v) > MAX_TEXT_CHARS:
                    self.problems.append(
                        f"{self.where(i)}: {column} is {len(v)} characters"
                        f" (at most {MAX_TEXT_CHARS})"
                    )
                elif _CONTROL_RE.search(v):
                    self.problems.append(f"{self.where(i)}: {column} contains control characters")
        return values

    def flags(self, column: str, default: npt.NDArray[np.bool_] | bool) -> npt.NDArray[np.bool_]:
        out = np.empty(self.n, dtype=np.bool_)
        out[:] = default
        values = self.columns.get(column)
        if values is None:
            return out
        if isinstance(values, np.ndarray) and values.dtype == np.bool_:
            return np.ascontiguousarray(values)
        for i, v in enumerate(values.tolist() if isinstance(values, np.ndarray) else values):
            if v is None or v == "":
                continue
            if v is True or v is False:
                out[i] = v
            elif isinstance(v, int) and v in (0, 1):
                out[i] = bool(v)
            elif isinstance(v, str) and v.strip().lower() in _TRUE:
                out[i] = True
            elif isinstance(v, str) and v.strip().lower() in _FALSE:
                out[i] = False
            else:
                self.problems.append(
                    f"{self.where(i)}: {column}: expected true/false, got {_short(v)}"
                )
        return out

    def numbers(self, column: str, low: float, high: float) -> npt.NDArray[np.float64]:
        out = np.full(self.n, np.nan, dtype=np.float64)
        values = self.columns.get(column)
        if values is None:
            return out
        if isinstance(values, np.ndarray) and values.dtype.kind == "f":
            out[:] = values
            bad = np.flatnonzero(~np.isnan(out) & ~((out >= low) & (out <= high)))
            for i in bad.tolist():
                self.problems.append(f"{self.where(i)}: {column} {out[i]} is outside {low}..{high}")
            return out
        for i, v in enumerate(values.tolist() if isinstance(values, np.ndarray) else values):
            if v is None or v == "":
                continue
            number: float | None = None
            if isinstance(v, int | float) and not isinstance(v, bool):
                number = float(v)
            elif isinstance(v, str):
                try:
                    number = float(v)
                except ValueError:
                    number = None
            if number is None or not math.isfinite(number) or not low <= number <= high:
                self.problems.append(
                    f"{self.where(i)}: {column}: expected a number in {low}..{high},"
                    f" got {_short(v)}"
                )
                continue
            out[i] = number
        return out


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _index(
    table: _Table, ids: list[str], what: str, extra: Callable[[int, int], str] | None = None
) -> dict[str, int]:
    """id -> first row. Duplicates are problems naming both rows."""
    index = dict(zip(ids, range(len(ids)), strict=True))
    if len(index) == len(ids):
        return index
    first: dict[str, int] = {}
    for row, key in enumerate(ids):
        if key == "":
            continue
        seen = first.setdefault(key, row)
        if seen != row:
            more = extra(seen, row) if extra else ""
            table.problems.append(
                f"{table.where(row)}: duplicate {what} {key!r} (first at {table.where(seen)}){more}"
            )
    return first


def _resolve(
    keys: list[str], index: dict[str, int], *, empty: int, missing: int
) -> npt.NDArray[np.int32]:
    """Map ids to rows at C speed; "" -> ``empty``, unknown -> ``missing``."""
    had_empty = "" in index
    index[""] = empty  # "" is never a valid id, so it cannot collide
    try:
        return np.fromiter(map(index.get, keys, repeat(missing)), dtype=np.int32, count=len(keys))
    finally:
        if not had_empty:
            del index[""]


def _cycles(
    parent: npt.NDArray[np.int32], reached: npt.NDArray[np.bool_], ids: list[str]
) -> list[str]:
    """Describe each cycle among unreached devices once (O(unreached))."""
    problems: list[str] = []
    state = np.zeros(parent.shape[0], dtype=np.int8)  # 0 new, 1 on current walk, 2 done
    stuck_below = 0
    for start in np.flatnonzero(~reached).tolist():
        if state[start]:
            continue
        walk = []
        node = start
        while node >= 0 and state[node] == 0:
            state[node] = 1
            walk.append(node)
            node = int(parent[node])
        if node >= 0 and state[node] == 1:  # closed a new cycle
            loop = walk[walk.index(node) :]
            shown = " -> ".join(ids[i] for i in loop[:10])
            extra = f" -> ... ({len(loop)} devices)" if len(loop) > 10 else ""
            problems.append(f"cycle: {shown}{extra} -> {ids[node]} (each is its own ancestor)")
            stuck_below += len(walk) - len(loop)
        else:
            stuck_below += len(walk)
        for i in walk:
            state[i] = 2
    if stuck_below:
        problems.append(f"{stuck_below} device(s) hang below a cycle and reach no substation")
    return problems


def build_topology(
    devices: Columns,
    meters: Columns,
    customers: Columns | None = None,
    *,
    locate: Locate = default_locate,
    problems: list[str] | None = None,
) -> Topology:
    """Validate column data and build the columnar model.

    ``devices``: id, parent, kind, zone [, name, normally_open, is_open, has_scada, lat,
    lon, alt_parent, area]; ``meters``: id, device [, customer]; ``customers``: id, account_no
    [, name, phone, language, channels, critical]. Unknown columns are ignored. With
    ``customers=None`` the meters' customer column is ignored (``has_customers`` False).
    ``problems`` lets a reader add what it found first. Raises ``TopologyError`` listing
    every problem, each naming the row via ``locate``.
    """
    problems = list(problems or [])
    warnings: list[str] = []

    # ---- devices ----
    dt = _Table("devices", devices, problems, locate)
    dev_ids = dt.ids("id", _ID_RE, _ALL_IDS_RE)
    parent_ids = dt.text("parent")
    kinds = dt.text("kind", allow_empty=False)
    zones = dt.ids("zone", _ZONE_RE, _ALL_ZONES_RE)
    alt_ids = dt.text("alt_parent")
    n_dev = dt.n
    if n_dev == 0 and "devices: missing" not in " ".join(problems):
        problems.append("devices: the topology has no devices")

    def two_parents(first: int, row: int) -> str:
        a, b = parent_ids[first], parent_ids[row]
        return f": two parents ({a or 'none'} and {b or 'none'})" if a != b else ""

    dev_index = _index(dt, dev_ids, "device id", two_parents)
    parent = _resolve(parent_ids, dev_index, empty=NO_PARENT, missing=-2)
    for row in np.flatnonzero(parent == -2).tolist():
        problems.append(
            f"{dt.where(row)}: device {dev_ids[row]} has unknown parent {_short(parent_ids[row])}"
        )
    self_parent = np.flatnonzero(parent == np.arange(n_dev))
    for row in self_parent.tolist():
        problems.append(f"{dt.where(row)}: device {dev_ids[row]} is its own parent")
    # Unknown parents become roots so one bad reference does not hide the rest.
    parent[parent == -2] = NO_PARENT

    kind_lookup = dict(KIND_CODE)
    kind_codes = _resolve(kinds, kind_lookup, empty=-1, missing=-1).astype(np.int8)
    for row in np.flatnonzero(kind_codes < 0).tolist():
        if kinds[row]:
            problems.append(
                f"{dt.where(row)}: device {dev_ids[row]} has unknown kind {_short(kinds[row])}"
                f" (one of {', '.join(DEVICE_KINDS)})"
            )

    names = dt.free_text("name")
    areas = dt.free_text("area")
    normally_open = dt.flags("normally_open", False)
    is_open = dt.flags("is_open", normally_open)
    has_scada = dt.flags("has_scada", False)
    lat = dt.numbers("lat", -90.0, 90.0)
    lon = dt.numbers("lon", -180.0, 180.0)

    alt_parent = _resolve(alt_ids, dev_index, empty=NO_PARENT, missing=-2)
    for row in np.flatnonzero(alt_parent != NO_PARENT).tolist():
        where, dev = dt.where(row), dev_ids[row]
        if alt_parent[row] == -2:
            problems.append(f"{where}: tie {dev} has unknown alt_parent {_short(alt_ids[row])}")
        elif alt_parent[row] == row:
            problems.append(f"{where}: tie {dev} is its own alt_parent")
        elif alt_parent[row] == parent[row]:
            problems.append(f"{where}: tie {dev} has alt_parent equal to its parent")
        if int(kind_codes[row]) not in TIE_KINDS and kind_codes[row] >= 0:
            problems.append(
                f"{where}: device {dev} has an alt_parent but is a {DEVICE_KINDS[kind_codes[row]]}"
                " (ties are breakers, reclosers, sectionalizers or switches)"
            )
        if not normally_open[row]:
            problems.append(
                f"{where}: tie {dev} has an alt_parent but is not normally_open"
                " (a closed tie in the normal configuration makes a loop)"
            )
    alt_parent[alt_parent == -2] = NO_PARENT

    # ---- the tree: roots are substations, no cycles (BFS from the roots is O(n)) ----
    child_ptr, child_idx = children_csr(parent)
    order, _ = bfs_levels(parent, child_ptr, child_idx)
    if order.shape[0] < n_dev:
        reached = np.zeros(n_dev, dtype=np.bool_)
        reached[order] = True
        problems.extend(_cycles(parent, reached, dev_ids))
    bad_roots = np.flatnonzero(
        (parent == NO_PARENT) & (kind_codes != SUBSTATION) & (kind_codes >= 0)
    )
    unknown_parent_rows = {i for i, p in enumerate(parent_ids) if p} if bad_roots.size else set()
    for row in bad_roots.tolist():
        if row not in unknown_parent_rows:  # already reported as an unknown parent
            problems.append(
                f"{dt.where(row)}: device {dev_ids[row]} has no parent but is a"
                f" {DEVICE_KINDS[kind_codes[row]]} (only a substation may be a root)"
            )

    # ---- customers ----
    has_customers = customers is not None
    cust_index: dict[str, int] = {}
    customer_table = _empty_customers()
    if customers is not None:
        customer_table, cust_index = _customers(customers, problems, warnings, locate)

    # ---- meters ----
    mt = _Table("meters", meters, problems, locate)
    meter_ids = mt.ids("id", _ID_RE, _ALL_IDS_RE)
    meter_index = _index(mt, meter_ids, "meter id")
    device_refs = mt.text("device")
    meter_device = _resolve(device_refs, dev_index, empty=-1, missing=-2)
    bad = np.flatnonzero(meter_device < 0)
    for row in bad.tolist():
        if meter_device[row] == -1:
            problems.append(f"{mt.where(row)}: meter {meter_ids[row]} is on no device")
        else:
            problems.append(
                f"{mt.where(row)}: meter {meter_ids[row]} is on unknown device"
                f" {_short(device_refs[row])}"
            )
    meter_device[bad] = 0
    if has_customers:
        customer_refs = mt.text("customer")
        meter_customer = _resolve(customer_refs, cust_index, empty=-1, missing=-2)
        for row in np.flatnonzero(meter_customer == -2).tolist():
            problems.append(
                f"{mt.where(row)}: meter {meter_ids[row]} belongs to unknown customer"
                f" {_short(customer_refs[row])}"
            )
        meter_customer[meter_customer == -2] = -1
    else:
        meter_customer = np.full(mt.n, -1, dtype=np.int32)
    if n_dev and mt.n:
        # Allowed, with a warning: primary-metered customers (factories, hospitals on
        # their own switchgear) hang directly off a recloser, switch or breaker.
        odd = np.flatnonzero(kind_codes[meter_device] != TRANSFORMER)
        odd = odd[~np.isin(odd, bad)]
        for row in odd[:MAX_WARNINGS].tolist():
            d = int(meter_device[row])
            kind = DEVICE_KINDS[kind_codes[d]] if kind_codes[d] >= 0 else "device"
            warnings.append(
                f"{mt.where(row)}: meter {meter_ids[row]} is on {kind} {dev_ids[d]},"
                " not on a transformer"
            )
        if odd.shape[0] > MAX_WARNINGS:
            warnings.append(f"... {odd.shape[0] - MAX_WARNINGS} more meters not on a transformer")

    if problems:
        raise TopologyError(problems)

    # ---- the as-operated tree (ties closed in the stored state re-parent it) ----
    op_parent, gate, refused = operated_tree(parent, alt_parent, is_open, dev_ids)
    if refused:
        raise TopologyError(refused)

    zone_pool: dict[str, str] = {}  # one str object per distinct zone
    device_table = DeviceTable(
        ids=_objects(dev_ids),
        parent=op_parent,
        kind=kind_codes,
        zone=_objects([zone_pool.setdefault(z, z) for z in zones]),
        normally_open=normally_open,
        is_open=is_open,
        has_scada=has_scada,
        name=_objects(names),
        area=_objects(areas),
        lat=lat,
        lon=lon,
        normal_parent=parent,
        alt_parent=alt_parent,
        gate=gate,
    )
    meter_table = MeterTable(ids=_objects(meter_ids), device=meter_device, customer=meter_customer)
    return Topology(
        devices=device_table,
        meters=meter_table,
        customers=customer_table,
        device_index=dev_index,
        meter_index=meter_index,
        customer_index=cust_index,
        has_customers=has_customers,
        warnings=warnings,
    )


def _objects(values: list[Any]) -> npt.NDArray[np.object_]:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _empty_customers() -> CustomerTable:
    empty = _objects([])
    return CustomerTable(
        ids=empty, account_no=empty, name=empty, phone_e164=empty, language=empty,
        channels=empty, critical=np.zeros(0, dtype=np.bool_),
    )  # fmt: skip


def _customers(
    columns: Columns, problems: list[str], warnings: list[str], locate: Locate
) -> tuple[CustomerTable, dict[str, int]]:
    ct = _Table("customers", columns, problems, locate)
    ids = ct.ids("id", _ID_RE, _ALL_IDS_RE)
    index = _index(ct, ids, "customer id")
    accounts = ct.free_text("account_no", allow_empty=False)
    _index(ct, accounts, "account number")
    names = ct.free_text("name")

    phones_text = ct.text("phone")
    present = "\n".join(p for p in phones_text if p)
    if present and not _ALL_PHONES_RE.fullmatch(present):
        for row, phone in enumerate(phones_text):
            if phone and not _PHONE_RE.fullmatch(phone):
                problems.append(
                    f"{ct.where(row)}: customer {ids[row]} phone {_short(phone)} is not E.164"
                    " (+ then 7 to 15 digits, e.g. +84912345678)"
                )
    phones: list[str | None] = [p or None for p in phones_text]

    languages = ct.text("language")
    language_pool = {lang: lang for lang in LANGUAGES}
    lang_out: list[str] = []
    for row, lang in enumerate(languages):
        value = language_pool.get(lang or "vi")
        if value is None:
            problems.append(
                f"{ct.where(row)}: customer {ids[row]} language {_short(lang)}"
                f" is not one of {', '.join(LANGUAGES)}"
            )
            value = "vi"
        lang_out.append(value)

    channels = _channels(ct, ids, phones, warnings)
    critical = ct.flags("critical", False)
    table = CustomerTable(
        ids=_objects(ids),
        account_no=_objects(accounts),
        name=_objects(names),
        phone_e164=_objects(phones),
        language=_objects(lang_out),
        channels=_objects(channels),
        critical=critical,
    )
    return table, index


def _channels(
    ct: _Table, ids: list[str], phones: list[str | None], warnings: list[str]
) -> list[tuple[str, ...]]:
    """Lists (JSON) or "sms|push" text (CSV); missing -> ("sms",). Tuples are shared."""
    values = ct.columns.get("channels")
    raw: list[Any] = [None] * ct.n if values is None else list(values)
    pool: dict[Any, tuple[str, ...]] = {}
    out: list[tuple[str, ...]] = []
    no_phone = 0
    for row, value in enumerate(raw):
        key: Any = tuple(value) if isinstance(value, list) else value
        try:
            chosen = pool.get(key)
        except TypeError:  # unhashable junk inside a list: parse it, never cache it
            chosen, key = None, None
        if chosen is None:
            before = len(ct.problems)
            chosen = _parse_channels(ct, row, value)
            if key is not None and len(ct.problems) == before:
                pool[key] = chosen
        out.append(chosen)
        if phones[row] is None and _wants_a_phone(chosen):
            no_phone += 1
            if no_phone <= MAX_WARNINGS:
                warnings.append(
                    f"{ct.where(row)}: customer {ids[row]} wants sms or zns but has no phone"
                )
    if no_phone > MAX_WARNINGS:
        warnings.append(
            f"... {no_phone - MAX_WARNINGS} more customers want sms or zns but have no phone"
        )
    return out


def _wants_a_phone(entries: tuple[str, ...]) -> bool:
    """SMS and ZNS both go to a phone number (in an order such as zns>sms too)."""
    return any(link in ("sms", "zns") for e in entries for link in e.split(CHAIN_SEPARATOR))


def _parse_channels(ct: _Table, row: int, value: object) -> tuple[str, ...]:
    if value is None or value == "":
        return ("sms",)
    if isinstance(value, str) and value.strip().lower() == "none":
        return ()
    if isinstance(value, str):
        items: list[object] = [part.strip() for part in value.split("|")]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        ct.problems.append(
            f"{ct.where(row)}: channels: expected a list or 'sms|push' text, got {_short(value)}"
        )
        return ()
    chosen: list[str] = []
    for item in items:
        links = item.split(CHAIN_SEPARATOR) if isinstance(item, str) else [item]
        if all(isinstance(link, str) and link in CHANNELS for link in links):
            if item not in chosen and isinstance(item, str):
                chosen.append(item)
        else:
            ct.problems.append(
                f"{ct.where(row)}: unknown channel {_short(item)} (one of"
                f" {', '.join(CHANNELS)}, or an order such as zns>sms)"
            )
    return tuple(chosen)
