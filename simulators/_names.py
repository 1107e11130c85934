"""Plausible customers for a Vietnamese city utility: names, E.164 numbers, languages, channels.

Everything is drawn from a numpy Generator with vectorised choices, then joined once, so a
million customers take well under a second.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from gridwatch.topology import BoolArray, ObjArray

_VI_FAMILY: Final = (
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Huỳnh",
    "Phan",
    "Vũ",
    "Võ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
    "Ngô",
    "Dương",
    "Lý",
)
_VI_MIDDLE: Final = (
    "Văn",
    "Thị",
    "Minh",
    "Ngọc",
    "Quốc",
    "Thanh",
    "Hữu",
    "Đức",
    "Thu",
    "Hoàng",
    "Gia",
    "Bảo",
)
_VI_GIVEN: Final = (
    "An",
    "Bình",
    "Châu",
    "Dũng",
    "Giang",
    "Hà",
    "Hải",
    "Hạnh",
    "Hiếu",
    "Hoa",
    "Hùng",
    "Hương",
    "Khánh",
    "Lan",
    "Linh",
    "Long",
    "Mai",
    "Nam",
    "Nga",
    "Phúc",
    "Phương",
    "Quang",
    "Sơn",
    "Tâm",
    "Thảo",
    "Trang",
    "Tuấn",
    "Uyên",
    "Việt",
    "Yến",
)
_EN_FIRST: Final = (
    "James",
    "Mary",
    "John",
    "Linda",
    "David",
    "Sarah",
    "Michael",
    "Emma",
    "Daniel",
    "Olivia",
    "Thomas",
    "Sophie",
    "Peter",
    "Anna",
    "Mark",
    "Grace",
)
_EN_LAST: Final = (
    "Smith",
    "Brown",
    "Wilson",
    "Taylor",
    "Johnson",
    "Walker",
    "Clarke",
    "Hughes",
    "Evans",
    "Turner",
    "Baker",
    "Young",
)
_CRITICAL: Final = (
    "Bệnh viện Quận {n}",
    "Trạm bơm nước số {n}",
    "Trạm y tế Phường {n}",
    "Trường học số {n}",
)
# Vietnamese mobile numbers: +84 then a 9-digit national number starting 3, 5, 7, 8 or 9.
_MOBILE_LEAD: Final = np.array([3, 5, 7, 8, 9], dtype=np.int64)

ENGLISH_SHARE: Final = 0.12
PHONE_SHARE: Final = 0.95
CRITICAL_SHARE: Final = 0.002


def _pick(rng: np.random.Generator, words: tuple[str, ...], n: int) -> ObjArray:
    table = np.array(words, dtype=object)
    return table[rng.integers(0, len(words), n)]


def make_customers(
    rng: np.random.Generator, n: int
) -> tuple[ObjArray, ObjArray, ObjArray, ObjArray, ObjArray, ObjArray, BoolArray]:
    """Columns for ``n`` customers: ids, account numbers, names, phones, languages, channels,
    critical flags."""
    ids = np.array([f"C-{i:07d}" for i in range(n)], dtype=object)
    account_no = np.array([f"PE{i:011d}" for i in range(n)], dtype=object)

    english = rng.random(n) < ENGLISH_SHARE
    vi_names = [
        f"{a} {b} {c}"
        for a, b, c in zip(
            _pick(rng, _VI_FAMILY, n),
            _pick(rng, _VI_MIDDLE, n),
            _pick(rng, _VI_GIVEN, n),
            strict=True,
        )
    ]
    en_names = [
        f"{a} {b}" for a, b in zip(_pick(rng, _EN_FIRST, n), _pick(rng, _EN_LAST, n), strict=True)
    ]
    name = np.where(english, np.array(en_names, dtype=object), np.array(vi_names, dtype=object))
    # Most English speakers here are expats, but some Vietnamese names prefer English too.
    language = np.where(english | (rng.random(n) < 0.03), "en", "vi").astype(object)

    critical = rng.random(n) < CRITICAL_SHARE
    crit_idx = np.flatnonzero(critical)
    if crit_idx.size:
        templates = _pick(rng, _CRITICAL, crit_idx.size)
        name[crit_idx] = [t.format(n=k + 1) for k, t in enumerate(templates)]
        language[crit_idx] = "vi"

    has_phone = (rng.random(n) < PHONE_SHARE) | critical
    national = _MOBILE_LEAD[rng.integers(0, _MOBILE_LEAD.size, n)] * 100_000_000 + rng.integers(
        0, 100_000_000, n
    )
    phone = np.array([f"+84{x}" for x in national.tolist()], dtype=object)
    phone[~has_phone] = None

    options = np.empty(4, dtype=object)
    options[:] = [("sms",), ("sms", "push"), ("push",), ("sms", "webhook")]
    draw = rng.random(n)
    choice = np.where(draw < 0.6, 0, np.where(draw < 0.9, 1, 2))
    choice[critical] = 3
    choice[~has_phone] = 2  # no number, no SMS
    channels = options[choice]
    return ids, account_no, name, phone, language, channels, critical
