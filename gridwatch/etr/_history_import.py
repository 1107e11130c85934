"""Restoration histories from the outside world (CSV files, database rows) as model columns.

Every row is kept or rejected with a reason (``RowReject``); good rows around a bad one
always go through. The CSV columns are documented in docs/etr-model.md.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt

from detectors.etr import (
    STORM_LEVELS,
    StormThresholds,
    cause_code,
    concurrent_open_counts,
    encode_classes,
    kind_code,
    tod_band,
)
from gridwatch.etr._errors import HistoryRejected

MAX_ROWS = 5_000_000
_ALIASES = {
    "started_at": ("started_at", "started_at_s", "start", "start_s", "start_time"),
    "restored_at": ("restored_at", "restored_at_s", "end", "end_s", "end_time"),
    "duration_s": ("duration_s", "duration"),
    "censored": ("censored", "open", "is_censored"),
    "device_kind": ("device_kind", "kind"),
    "cause": ("cause",),
    "storm_level": ("storm_level", "storm"),
    "zone": ("zone",),
    "customers": ("customers", "customers_affected"),
    "planned": ("planned",),
}
_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n", ""}


@dataclass(frozen=True)
class HistoryRecord:
    """One past outage. Give ``duration_s`` (+ ``censored``) or ``restored_at_s`` (None = still
    open at ``as_of``). ``storm_level`` None = derived from concurrent outages in the history."""

    started_at_s: float
    restored_at_s: float | None = None
    duration_s: float | None = None
    censored: bool = False
    device_kind: str | None = None
    cause: str | None = None
    storm_level: int | None = None
    zone: str | None = None  # for the interval backtest's crew queues; None = one zone
    customers: int = 0
    planned: bool = False  # planned work: not a repair, left out of fits


@dataclass(frozen=True)
class RowReject:
    row: int  # 1-based data row (CSV: line number)
    reason: str


@dataclass(frozen=True)
class HistoryColumns:
    duration_s: npt.NDArray[np.float64]
    censored: npt.NDArray[np.bool_]
    class_code: npt.NDArray[np.int64]
    started_at_s: npt.NDArray[np.float64]
    rejects: list[RowReject] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.duration_s.shape[0])


def reject_reason(rec: HistoryRecord, as_of_s: float) -> str | None:
    if not math.isfinite(rec.started_at_s):
        return "started_at is not a finite time"
    if rec.storm_level is not None and not 0 <= rec.storm_level < len(STORM_LEVELS):
        return f"storm_level must be 0..{len(STORM_LEVELS) - 1}"
    if rec.duration_s is not None:
        if not math.isfinite(rec.duration_s):
            return "duration_s is not finite"
        if rec.duration_s <= 0:
            return "duration_s must be > 0"
        return None
    if rec.restored_at_s is None:
        if rec.started_at_s >= as_of_s:
            return "open outage starts at or after the history's as-of time"
        return None
    if not math.isfinite(rec.restored_at_s):
        return "restored_at is not a finite time"
    if rec.restored_at_s < rec.started_at_s:
        return "restored before it started"
    if rec.restored_at_s == rec.started_at_s:
        return "zero duration (restored when it started)"
    return None


def history_from_records(
    records: Iterable[HistoryRecord],
    *,
    as_of_s: float,
    thresholds: StormThresholds | None = None,
    utc_offset_s: float = 7 * 3600.0,
    first_row: int = 1,
    rejects: list[RowReject] | None = None,
) -> HistoryColumns:
    """Model columns from records; open outages are right-censored at ``as_of_s``."""
    thresholds = thresholds or StormThresholds()
    out_rejects = list(rejects or [])
    started: list[float] = []
    duration: list[float] = []
    censored: list[bool] = []
    ended: list[float] = []
    kinds: list[int] = []
    causes: list[int] = []
    storms: list[int] = []
    for n, rec in enumerate(records, start=first_row):
        reason = reject_reason(rec, as_of_s)
        if reason is not None:
            out_rejects.append(RowReject(n, reason))
            continue
        if rec.duration_s is not None:
            dur, cens = rec.duration_s, rec.censored
        elif rec.restored_at_s is None:
            dur, cens = as_of_s - rec.started_at_s, True
        else:
            dur, cens = rec.restored_at_s - rec.started_at_s, False
        started.append(rec.started_at_s)
        duration.append(dur)
        censored.append(cens)
        ended.append(math.nan if cens else rec.started_at_s + dur)
        kinds.append(kind_code(rec.device_kind))
        causes.append(cause_code(rec.cause))
        storms.append(-1 if rec.storm_level is None else rec.storm_level)
    start_a = np.asarray(started, dtype=np.float64)
    storm_a = np.asarray(storms, dtype=np.int64)
    missing = storm_a < 0
    if missing.any():
        counts = concurrent_open_counts(
            start_a[missing], start_a, np.asarray(ended, dtype=np.float64)
        )
        storm_a[missing] = thresholds.level(counts)
    codes = encode_classes(
        np.asarray(kinds, dtype=np.int64),
        storm_a,
        np.asarray(causes, dtype=np.int64),
        tod_band(start_a, utc_offset_s),
    )
    return HistoryColumns(
        np.asarray(duration, dtype=np.float64),
        np.asarray(censored, dtype=np.bool_),
        codes,
        start_a,
        out_rejects,
    )


def history_open_counts(
    records: Sequence[HistoryRecord], *, as_of_s: float
) -> npt.NDArray[np.int64]:
    """Outages open at each usable record's start (itself included), the input of
    ``calibrate_storm_thresholds``; rows ``history_from_records`` would reject are skipped."""
    starts: list[float] = []
    ends: list[float] = []
    for rec in records:
        if reject_reason(rec, as_of_s) is not None:
            continue
        starts.append(rec.started_at_s)
        if rec.duration_s is not None:
            ends.append(math.nan if rec.censored else rec.started_at_s + rec.duration_s)
        else:
            ends.append(math.nan if rec.restored_at_s is None else rec.restored_at_s)
    s = np.asarray(starts, dtype=np.float64)
    return concurrent_open_counts(s, s, np.asarray(ends, dtype=np.float64))


def _parse_time(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    stamp = datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        raise ValueError("timestamp has no UTC offset")
    return stamp.timestamp()


def _parse_storm(text: str) -> int | None:
    text = text.strip().lower()
    if text == "":
        return None
    if text in STORM_LEVELS:
        return STORM_LEVELS.index(text)
    return int(text)


def _rows(reader: Iterator[list[str]], rejects: list[RowReject]) -> Iterator[tuple[int, list[str]]]:
    line = 1
    while True:
        line += 1
        try:
            yield line, next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            rejects.append(RowReject(line, f"malformed CSV row: {exc}"))


def read_history_csv(
    source: str | Path | TextIO,
    *,
    as_of_s: float,
    thresholds: StormThresholds | None = None,
    utc_offset_s: float = 7 * 3600.0,
    max_rows: int = MAX_ROWS,
) -> HistoryColumns:
    """Read a history CSV (a path, or an open text stream). Header names are matched
    case-insensitively with the aliases above; unknown columns are ignored.

    Raises HistoryRejected when the header lacks the required columns; bad rows are
    listed in ``rejects`` with their line number and the rest are used.
    """
    records, rejects = read_history_records(source, as_of_s=as_of_s, max_rows=max_rows)
    cols = history_from_records(
        records, as_of_s=as_of_s, thresholds=thresholds, utc_offset_s=utc_offset_s
    )
    return HistoryColumns(
        cols.duration_s, cols.censored, cols.class_code, cols.started_at_s, rejects
    )


def read_history_records(
    source: str | Path | TextIO, *, as_of_s: float, max_rows: int = MAX_ROWS
) -> tuple[list[HistoryRecord], list[RowReject]]:
    """The CSV's usable rows as records (with ``zone``, ``customers``, ``planned`` when the
    file has them) and the rejected ones, sorted by line."""
    if isinstance(source, str | Path):
        with open(source, encoding="utf-8", newline="") as fh:
            return read_history_records(fh, as_of_s=as_of_s, max_rows=max_rows)
    reader = csv.reader(source)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise HistoryRejected("history CSV is empty (no header row)") from None
    except csv.Error as exc:
        raise HistoryRejected(f"history CSV header is malformed: {exc}") from None
    col: dict[str, int] = {}
    for name, aliases in _ALIASES.items():
        for alias in aliases:
            if alias in header:
                col[name] = header.index(alias)
                break
    if "started_at" not in col or ("duration_s" not in col and "restored_at" not in col):
        raise HistoryRejected(
            "history CSV needs a started_at column and either duration_s or restored_at; got: "
            + ", ".join(header[:20])
        )
    rejects: list[RowReject] = []
    records: list[HistoryRecord] = []
    numbers: list[int] = []

    def cell(row: list[str], name: str) -> str | None:
        i = col.get(name)
        return row[i] if i is not None and i < len(row) else None

    for line, row in _rows(reader, rejects):
        if len(records) + len(rejects) >= max_rows:
            rejects.append(RowReject(line, f"more than {max_rows} rows; the rest were not read"))
            break
        if not row or all(c.strip() == "" for c in row):
            continue
        try:
            started = _parse_time(cell(row, "started_at") or "")
            dur_text = (cell(row, "duration_s") or "").strip()
            end_text = (cell(row, "restored_at") or "").strip()
            cens_text = (cell(row, "censored") or "").strip().lower()
            if cens_text not in _TRUE | _FALSE:
                raise ValueError(f"censored must be true/false, got {cens_text[:20]!r}")
            storm = _parse_storm(cell(row, "storm_level") or "")
            rec = HistoryRecord(
                started_at_s=started,
                restored_at_s=_parse_time(end_text) if end_text and not dur_text else None,
                duration_s=float(dur_text) if dur_text else None,
                censored=cens_text in _TRUE,
                device_kind=(cell(row, "device_kind") or "").strip() or None,
                cause=(cell(row, "cause") or "").strip() or None,
                storm_level=storm,
                zone=(cell(row, "zone") or "").strip() or None,
                customers=int(float((cell(row, "customers") or "0").strip() or "0")),
                planned=(cell(row, "planned") or "").strip().lower() in _TRUE,
            )
        except (ValueError, OverflowError) as exc:
            rejects.append(RowReject(line, f"unreadable value: {str(exc)[:120]}"))
            continue
        reason = reject_reason(rec, as_of_s)
        if reason is not None:
            rejects.append(RowReject(line, reason))
            continue
        records.append(rec)
        numbers.append(line)
    return records, sorted(rejects, key=lambda r: r.row)


def read_history_csv_text(text: str, **kwargs: object) -> HistoryColumns:
    """Convenience for tests and the API: the CSV as a string."""
    return read_history_csv(io.StringIO(text), **kwargs)  # type: ignore[arg-type]
