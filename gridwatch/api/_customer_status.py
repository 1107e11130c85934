"""``/api/v1/customer/status``: a customer's own outage status, ETR window and history.

Separate from the operator API: the customer proves who they are with their account number
and the last four digits of their phone, or with the signed link sent by SMS
(``<customer_id>.<HMAC-SHA256(notify_link_secret, customer_id)[:32 hex]>``, the notifier's
``customer_link_token``). Failures count towards the per-address limit (429). The answer
holds this customer's data only.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field, StringConstraints

from gridwatch.api._auth import FailureLimiter, client_ip, too_many
from gridwatch.api._deps import ClockDep, DbDep, SettingsDep
from gridwatch.api._errors import ERROR_RESPONSES
from gridwatch.api._ops_models import RequestBody
from gridwatch.store import customers as customer_store
from gridwatch.store import outage_queries
from gridwatch.store import planned as planned_store

router = APIRouter(tags=["customer"])

HISTORY_DAYS = 365
RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    401: {"description": "Account and phone digits do not match, or the link is not valid"},
    429: {"description": "Too many failed attempts from this address"},
}


def link_token(customer_id: str, secret: bytes) -> str:
    """The token of a customer's status link (same as notifier.customer_link_token)."""
    mac = hmac.new(secret, customer_id.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{customer_id}.{mac}"


def customer_from_token(token: str, secret: bytes) -> str | None:
    if not token or len(token) > 200 or "." not in token:
        return None
    customer_id = token.rsplit(".", 1)[0]
    if not customer_id:
        return None
    return customer_id if hmac.compare_digest(link_token(customer_id, secret), token) else None


class LookupBody(RequestBody):
    account_no: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
    phone_last4: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]


class EtrWindow(BaseModel):
    earliest: datetime | None = Field(description="p10")
    likely: datetime | None = Field(description="p50")
    latest: datetime | None = Field(description="p90")


class CustomerOutage(BaseModel):
    outage_id: int
    state: str
    planned: bool
    cause: str | None
    started_at: datetime
    restored_at: datetime | None = Field(description="When your supply came back, if known")
    still_out: bool
    crew_status: str | None = Field(
        description="What the repair crew last reported: dispatched, on_site or released;"
        " null while no crew has reported"
    )
    etr: EtrWindow


class UpcomingWork(BaseModel):
    starts_at: datetime
    ends_at: datetime
    reason: str


class CustomerStatus(BaseModel):
    account_no: str
    current: list[CustomerOutage] = Field(description="Outages affecting you now")
    history: list[CustomerOutage] = Field(description=f"The last {HISTORY_DAYS} days")
    planned: list[UpcomingWork]


def _limiter(request: Request) -> FailureLimiter:
    limiter: FailureLimiter = request.app.state.auth_limiter
    wait_s = limiter.retry_after_s(client_ip(request))
    if wait_s is not None:
        raise too_many(wait_s)
    return limiter


async def _status(db: Any, clock: Any, customer_id: str, account_no: str) -> CustomerStatus:
    now = datetime.fromtimestamp(clock.now_s(), UTC)
    rows = await outage_queries.customer_outages(
        db, customer_id, since=now - timedelta(days=HISTORY_DAYS), limit=50
    )
    outages = [
        CustomerOutage(
            outage_id=r["outage_id"],
            state=r["state"],
            planned=r["planned"],
            cause=r["cause"],
            started_at=r["started_at"],
            restored_at=r["my_restored_at"] or r["restored_at"],
            still_out=bool(r["still_out"]) and r["state"] not in ("restored", "cancelled"),
            crew_status=r["crew_status"],
            etr=EtrWindow(earliest=r["etr_p10"], likely=r["etr_p50"], latest=r["etr_p90"]),
        )
        for r in rows
    ]
    planned = await planned_store.customer_planned(db, customer_id, ends_after=now)
    return CustomerStatus(
        account_no=account_no,
        current=[o for o in outages if o.still_out],
        history=[o for o in outages if not o.still_out],
        planned=[
            UpcomingWork(**{k: p[k] for k in ("starts_at", "ends_at", "reason")}) for p in planned
        ],
    )


@router.post(
    "/customer/status",
    response_model=CustomerStatus,
    summary="Your status: by account number and the last 4 digits of your phone",
    responses=RESPONSES,
)
async def status_by_account(
    db: DbDep, clock: ClockDep, request: Request, body: LookupBody
) -> CustomerStatus:
    limiter = _limiter(request)
    row = await customer_store.customer_by_account(db, body.account_no)
    phone = (row or {}).get("phone_e164") or ""
    # Compare even when the account is unknown: the answer time says nothing either way.
    matches = hmac.compare_digest(phone[-4:].encode(), body.phone_last4.encode())
    if row is None or len(phone) < 4 or not matches:
        limiter.record_failure(client_ip(request))
        raise HTTPException(401, "account number and phone digits do not match")
    return await _status(db, clock, str(row["customer_id"]), str(row["account_no"]))


@router.get(
    "/customer/status",
    response_model=CustomerStatus,
    summary="Your status from the link in our SMS (?t=<token>)",
    responses=RESPONSES,
)
async def status_by_link(
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
    request: Request,
    t: Annotated[str, Query(min_length=1, max_length=200, description="The link's token")],
) -> CustomerStatus:
    limiter = _limiter(request)
    # The same secret the notifier signs SMS links with (one setting, one meaning).
    secret = settings.notify_link_secret.get_secret_value().encode()
    customer_id = customer_from_token(t, secret)
    row = await customer_store.get_customer(db, customer_id) if customer_id else None
    if row is None:
        limiter.record_failure(client_ip(request))
        raise HTTPException(401, "this link is not valid")
    return await _status(db, clock, str(row["customer_id"]), str(row["account_no"]))
