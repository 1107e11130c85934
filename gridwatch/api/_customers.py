"""``/api/v1/customers`` and ``/api/v1/notifications``: customers and what they were told,
personal data limited by role (viewer: masked name and phone; operator: masked phone;
admin: everything)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field, StringConstraints

from gridwatch.api._auth import ViewerDep
from gridwatch.api._deps import DbDep
from gridwatch.api._errors import ERROR_RESPONSES
from gridwatch.api._ops_models import Id, NotificationPage
from gridwatch.api._outages import notification_item
from gridwatch.api._privacy import name_for, phone_for
from gridwatch.store import customers as customer_store
from gridwatch.store import notification_log

router = APIRouter(tags=["customers"])

NOTIFICATION_PAGE_MAX = 500
_BIGINT_MAX = 2**63 - 1
AccountNo = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


class CustomerView(BaseModel):
    customer_id: str
    account_no: str
    name: str | None = Field(description="Masked for viewers")
    phone: str | None = Field(description="Masked below admin")
    language: str
    channels: list[str]
    critical: bool
    meter_ids: list[str]


async def _customer(db: DbDep, principal: ViewerDep, customer_id: str) -> CustomerView:
    row = await customer_store.get_customer(db, customer_id)
    if row is None:
        raise HTTPException(404, f"customer {customer_id} does not exist")
    return CustomerView(
        customer_id=row["customer_id"],
        account_no=row["account_no"],
        name=name_for(principal, row["name"]),
        phone=phone_for(principal, row["phone_e164"]),
        language=row["language"],
        channels=list(row["channels"]),
        critical=row["critical"],
        meter_ids=list(row["meter_ids"]),
    )


@router.get(
    "/customers/{customer_id}",
    response_model=CustomerView,
    summary="One customer (personal data per role)",
    responses={**ERROR_RESPONSES, 404: {"description": "No such customer"}},
)
async def get_customer(
    db: DbDep, principal: ViewerDep, customer_id: Annotated[Id, Path()]
) -> CustomerView:
    return await _customer(db, principal, customer_id)


@router.get(
    "/customers",
    response_model=CustomerView,
    summary="Find a customer by account number",
    responses={**ERROR_RESPONSES, 404: {"description": "No such account"}},
)
async def find_customer(
    db: DbDep, principal: ViewerDep, account_no: Annotated[AccountNo, Query()]
) -> CustomerView:
    row = await customer_store.customer_by_account(db, account_no)
    if row is None:
        raise HTTPException(404, "no customer with that account number")
    return await _customer(db, principal, str(row["customer_id"]))


@router.get(
    "/notifications",
    response_model=NotificationPage,
    summary="The notification log, newest first, by outage and/or customer",
    responses=ERROR_RESPONSES,
)
async def notifications(
    db: DbDep,
    principal: ViewerDep,
    outage_id: Annotated[int | None, Query(ge=1, le=_BIGINT_MAX)] = None,
    customer_id: Annotated[Id | None, Query()] = None,
    limit: Annotated[
        int, Query(ge=1, description=f"Above {NOTIFICATION_PAGE_MAX} is capped")
    ] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=_BIGINT_MAX, description="Older than this id")
    ] = None,
) -> NotificationPage:
    applied = min(limit, NOTIFICATION_PAGE_MAX)
    rows = await notification_log.notifications_page(
        db, outage_id=outage_id, customer_id=customer_id, limit=applied, before_id=before
    )
    return NotificationPage(
        items=[notification_item(principal, r) for r in rows],
        limit=applied,
        next_before=rows[-1]["notification_id"] if len(rows) == applied else None,
    )
