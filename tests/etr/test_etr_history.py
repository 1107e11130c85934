"""History import: CSV columns, and bad, hostile and oversized rows rejected with a reason
while the good rows around them go through."""

from __future__ import annotations

import io

import numpy as np
import pytest

from detectors.etr import decode_class
from gridwatch.etr import HistoryRecord, HistoryRejected, history_from_records, read_history_csv
from gridwatch.etr import read_history_csv_text as read_text

AS_OF = 1_800_000_000.0


def test_reads_duration_and_restored_at_forms() -> None:
    text = (
        "started_at,duration_s,censored,device_kind,cause,storm_level\n"
        "2026-11-20T08:00:00+07:00,3600,false,fuse,vegetation,0\n"
        "1790000000,5400,true,transformer,,storm\n"
    )
    cols = read_text(text, as_of_s=AS_OF)
    assert cols.rejects == []
    np.testing.assert_array_equal(cols.duration_s, [3600.0, 5400.0])
    np.testing.assert_array_equal(cols.censored, [False, True])
    first, second = (decode_class(int(c)) for c in cols.class_code)
    assert first == {
        "device_kind": "fuse",
        "storm_level": "quiet",
        "cause": "vegetation",
        "tod_band": "morning",
    }
    assert second["storm_level"] == "storm"
    assert second["cause"] == "unknown"

    text2 = (
        "Start,End,Kind\n"
        "2026-11-20T08:00:00Z,2026-11-20T09:30:00Z,breaker\n"
        f"{AS_OF - 600},,recloser\n"  # still open: censored at as-of
    )
    cols2 = read_text(text2, as_of_s=AS_OF)
    np.testing.assert_array_equal(cols2.duration_s, [5400.0, 600.0])
    np.testing.assert_array_equal(cols2.censored, [False, True])


def test_bad_rows_are_rejected_with_reasons_and_good_rows_kept() -> None:
    text = (
        "started_at,restored_at,device_kind\n"
        "2026-11-20T08:00:00Z,2026-11-20T07:00:00Z,fuse\n"  # restore before start
        "2026-11-20T08:00:00Z,2026-11-20T08:00:00Z,fuse\n"  # zero duration
        "2026-11-20T08:00:00,2026-11-20T09:00:00Z,fuse\n"  # naive time
        "yesterday,2026-11-20T09:00:00Z,fuse\n"  # garbage
        "nan,2026-11-20T09:00:00Z,fuse\n"  # not finite
        "2026-11-20T08:00:00Z,2026-11-20T09:00:00Z,fuse\n"  # good
        "\n"
        "2026-11-20T08:00:00Z,2026-11-20T10:00:00Z,'; DROP TABLE outages;--\n"  # hostile kind
    )
    cols = read_text(text, as_of_s=AS_OF)
    assert len(cols) == 2
    reasons = {r.row: r.reason for r in cols.rejects}
    assert reasons[2] == "restored before it started"
    assert reasons[3].startswith("zero duration")
    assert "UTC offset" in reasons[4]
    assert "unreadable" in reasons[5]
    assert "finite" in reasons[6]
    assert decode_class(int(cols.class_code[1]))["device_kind"] == "unknown"


def test_duration_rules_and_storm_levels() -> None:
    text = (
        "started_at,duration_s,censored,storm_level\n"
        "1790000000,-30,false,\n"
        "1790000000,0,false,\n"
        "1790000000,inf,false,\n"
        "1790000000,600,maybe,\n"
        "1790000000,600,false,7\n"
        "1790000000,600,false,hurricane\n"
        "1790000000,600,false,major\n"
    )
    cols = read_text(text, as_of_s=AS_OF)
    assert len(cols) == 1
    assert [r.row for r in cols.rejects] == [2, 3, 4, 5, 6, 7]
    assert decode_class(int(cols.class_code[0]))["storm_level"] == "major"


def test_header_problems_are_refused() -> None:
    with pytest.raises(HistoryRejected, match="empty"):
        read_text("", as_of_s=AS_OF)
    with pytest.raises(HistoryRejected, match="started_at"):
        read_text("kind,cause\nfuse,tree\n", as_of_s=AS_OF)
    with pytest.raises(HistoryRejected, match="duration_s or restored_at"):
        read_text("started_at,kind\n1790000000,fuse\n", as_of_s=AS_OF)


def test_oversized_input_is_bounded() -> None:
    rows = "".join(f"{1790000000 + i},600,false\n" for i in range(50))
    cols = read_text("started_at,duration_s,censored\n" + rows, as_of_s=AS_OF, max_rows=10)
    assert len(cols) == 10
    assert "more than 10 rows" in cols.rejects[-1].reason
    huge = "started_at,duration_s\n" + "1790000000," + "9" * 200_000 + "\n1790000000,600\n"
    cols2 = read_text(huge, as_of_s=AS_OF)
    assert len(cols2) == 1
    assert len(cols2.rejects) == 1


def test_reads_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "history.csv"
    path.write_text("started_at,duration_s\n1790000000,600\n", encoding="utf-8")
    assert len(read_history_csv(path, as_of_s=AS_OF)) == 1
    assert len(read_history_csv(io.StringIO(path.read_text()), as_of_s=AS_OF)) == 1


def test_storm_level_derived_from_concurrent_outages() -> None:
    start = 1_790_000_000.0
    # 60 overlapping outages: the later ones start while many others are open.
    records = [HistoryRecord(start + i, None, 7200.0, False, "fuse") for i in range(60)]
    records.append(HistoryRecord(start + 10 * 86400.0, None, 600.0, False, "fuse"))
    cols = history_from_records(records, as_of_s=AS_OF)
    levels = [decode_class(int(c))["storm_level"] for c in cols.class_code]
    assert levels[0] == "quiet"
    assert levels[59] == "storm"  # 60 open >= 40
    assert levels[60] == "quiet"
    assert all(r.reason for r in cols.rejects)
