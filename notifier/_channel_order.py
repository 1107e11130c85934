"""Per-customer channel order with fallback.

A customer's ``channels`` (or the preference override) lists entries; an entry written
``zns>sms`` is an ordered chain: the notice goes on ZNS, and on SMS only when ZNS cannot
deliver (or no receipt arrives in time, see ``DispatcherConfig.fallback_receipt_timeout_s``).
Separate entries (``["zns>sms", "push"]``) are all sent: that is how a customer asks for
both. At enqueue every link is rendered; the first deliverable link goes into the outbox, the
others are held (``notify_fallback_queue``) until the dispatcher's fallback sweep decides
them from the state of the link before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Final

from notifier._events import OutageChange
from notifier._policy import NotifyPolicy
from notifier._ports import HeldNotification, NewNotification, NotifyTarget
from notifier._render import notice_params
from notifier._templates import REQUIRED, Templates
from notifier._zns import zns_params

CHAIN_SEP: Final = ">"
MAX_ENTRY_CHARS: Final = 100


def parse_entry(entry: str, known: Sequence[str]) -> tuple[str, ...]:
    """``"zns > sms"`` -> ``("zns", "sms")``; unknown or repeated channels are dropped (an
    unknown channel is skipped at enqueue, as a plain unknown entry always was)."""
    if not isinstance(entry, str) or len(entry) > MAX_ENTRY_CHARS:
        return ()
    chain: list[str] = []
    for part in entry.split(CHAIN_SEP):
        name = part.strip()
        if name in known and name not in chain:
            chain.append(name)
    return tuple(chain)


def validate_channel_entries(entries: Sequence[str], known: Sequence[str]) -> list[str]:
    """Problems with a customer's channel entries, for the preference API and CLI."""
    problems: list[str] = []
    if len(entries) > 10:
        problems.append("at most 10 channel entries")
    seen: set[str] = set()
    for entry in entries[:10]:
        if not isinstance(entry, str) or not entry.strip() or len(entry) > MAX_ENTRY_CHARS:
            problems.append(f"{str(entry)[:40]!r}: empty or longer than {MAX_ENTRY_CHARS}")
            continue
        for part in entry.split(CHAIN_SEP):
            name = part.strip()
            if name not in known:
                problems.append(f"{name[:20]!r}: unknown channel; known: {', '.join(known)}")
            elif name in seen:
                problems.append(f"{name!r} appears twice (one notice per channel)")
            seen.add(name)
    return problems


def expand_targets(
    targets: Sequence[NotifyTarget], known: Sequence[str]
) -> tuple[list[NotifyTarget], dict[str, list[tuple[str, ...]]]]:
    """Targets with their chains flattened (one row per channel is rendered as before), and
    each customer's chains. A channel in two entries is sent once, in the first."""
    flat: list[NotifyTarget] = []
    chains: dict[str, list[tuple[str, ...]]] = {}
    for target in targets:
        used: set[str] = set()
        mine: list[tuple[str, ...]] = []
        for entry in target.channels:
            chain = tuple(c for c in parse_entry(entry, known) if c not in used)
            used.update(chain)
            if chain:
                mine.append(chain)
        chains[target.customer_id] = mine
        flat_channels = tuple(c for chain in mine for c in chain)
        flat.append(
            target if flat_channels == target.channels else replace(target, channels=flat_channels)
        )
    return flat, chains


def order_rows(
    rows: Sequence[NewNotification],
    chains: Mapping[str, list[tuple[str, ...]]],
    targets: Sequence[NotifyTarget],
    change: OutageChange,
    templates: Templates,
    policy: NotifyPolicy,
) -> tuple[list[NewNotification], list[HeldNotification]]:
    """Fill ZNS rows (phone, template data) and split each chain: the first link that can be
    tried goes to the outbox, the rest are held behind the link before them. A link rejected
    at enqueue (no usable number) is kept as a row and the next link goes out at once."""
    phones = {t.customer_id: t.phone_e164 for t in targets}
    zones = {t.customer_id: t.timezone or policy.timezone for t in targets}
    params_cache: dict[tuple[str, str], dict[str, str]] = {}
    by_link: dict[tuple[str, str, int, str], NewNotification] = {}
    for row in rows:
        if row.channel == "zns":
            row = _zns_row(row, phones, zones, change, templates, policy, params_cache)
        by_link[(row.customer_id, row.kind, row.version, row.channel)] = row
    out: list[NewNotification] = []
    held: list[HeldNotification] = []
    done: set[tuple[str, str, int, str]] = set()
    for row in rows:
        link = (row.customer_id, row.kind, row.version, row.channel)
        if link in done:
            continue
        chain = next((c for c in chains.get(row.customer_id, ()) if row.channel in c), None)
        if chain is None or len(chain) == 1:
            done.add(link)
            out.append(by_link[link])
            continue
        present = [
            by_link[key]
            for c in chain
            if (key := (row.customer_id, row.kind, row.version, c)) in by_link
        ]
        done.update((r.customer_id, r.kind, r.version, r.channel) for r in present)
        previous: NewNotification | None = None
        for member in present:
            if previous is None or previous.status == "rejected":
                out.append(member)
            else:
                held.append(HeldNotification(member, previous.idempotency_key))
            previous = member
    return out, held


def _zns_row(
    row: NewNotification,
    phones: Mapping[str, str | None],
    zones: Mapping[str, str],
    change: OutageChange,
    templates: Templates,
    policy: NotifyPolicy,
    cache: dict[tuple[str, str], dict[str, str]],
) -> NewNotification:
    phone = phones.get(row.customer_id)
    key = (row.language, zones.get(row.customer_id, policy.timezone))
    params = cache.get(key)
    if params is None:
        params = cache[key] = notice_params(change, templates, key[0], policy, key[1])
    wanted = sorted(REQUIRED.get(row.kind, frozenset({"where"})))
    ref = row.body[row.body.rfind("#") + 1 :] if "#" in row.body else ""
    body = json.dumps(zns_params({k: params[k] for k in wanted}, ref), ensure_ascii=False)
    if not (phone and phone.startswith("+84")):
        return replace(
            row,
            address=phone,
            body=body,
            status="rejected",
            last_error="ZNS needs a Vietnamese (+84) phone number",
        )
    return replace(row, address=phone, body=body)
