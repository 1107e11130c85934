"""``/api/v1/stream/outages``: Server-Sent Events of outage changes.

Events: ``outage`` (data: outage_id, op, state, zone, device_id, customers_affected,
updated_at), ``resync`` (changes may have been missed: re-read the list), ``dropped``
(this client fell too far behind and is disconnected). Comment lines keep idle
connections open.

Browsers' EventSource cannot send an Authorization header, so a client may first trade
its token for a one-use ticket (``POST /stream/tickets``, valid 60 s) and open the stream
with ``?ticket=``; clients that can send headers use their bearer token directly.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from gridwatch.api._auth import Principal, ViewerDep, authenticate
from gridwatch.api._deps import ApiSettingsDep, FeedDep
from gridwatch.api._errors import ERROR_RESPONSES
from gridwatch.api._feed import FeedFull, OutageFeed, Subscription

router = APIRouter(tags=["live stream"])
TICKET_TTL_S = 60.0


class StreamTickets:
    """One-use tickets for EventSource clients; bounded, expiring."""

    def __init__(self, *, max_tickets: int = 10_000) -> None:
        self.max_tickets = max_tickets
        self._tickets: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def issue(self, principal: Principal) -> str:
        ticket = secrets.token_urlsafe(24)
        self._tickets[ticket] = (time.monotonic() + TICKET_TTL_S, principal)
        while len(self._tickets) > self.max_tickets:
            self._tickets.popitem(last=False)
        return ticket

    def redeem(self, ticket: str) -> Principal | None:
        entry = self._tickets.pop(ticket, None)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]


class StreamTicket(BaseModel):
    ticket: str
    expires_in_s: float = Field(description="Use it within this many seconds, once")


async def _events(
    request: Request, feed: OutageFeed, sub: Subscription, heartbeat_s: float
) -> AsyncIterator[bytes]:
    try:
        yield b": connected\nretry: 2000\n\n"
        while True:
            event = await sub.next_event(heartbeat_s)
            if event is not None:
                yield event
            elif sub.dropped:
                yield b'event: dropped\ndata: {"reason": "fell behind"}\n\n'
                return
            else:
                yield b": keepalive\n\n"
    finally:
        feed.unsubscribe(sub)


@router.post(
    "/stream/tickets",
    response_model=StreamTicket,
    summary="A one-use ticket to open the live stream from a browser (EventSource)",
    responses=ERROR_RESPONSES,
)
async def stream_ticket(request: Request, principal: ViewerDep) -> StreamTicket:
    tickets: StreamTickets = request.app.state.stream_tickets
    return StreamTicket(ticket=tickets.issue(principal), expires_in_s=TICKET_TTL_S)


@router.get(
    "/stream/outages",
    summary="Live outage changes (Server-Sent Events); bearer token or ?ticket=",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "An endless event stream"},
        401: {"description": "No valid token or ticket"},
        503: {"description": "Too many live streams open"},
    },
)
async def stream_outages(
    request: Request,
    feed: FeedDep,
    settings: ApiSettingsDep,
    ticket: Annotated[
        str | None, Query(max_length=100, description="From POST /stream/tickets")
    ] = None,
) -> StreamingResponse:
    if ticket is not None and "authorization" not in request.headers:
        tickets: StreamTickets = request.app.state.stream_tickets
        if tickets.redeem(ticket) is None:
            raise HTTPException(401, "stream ticket unknown, used or expired")
    else:
        await authenticate(request)
    try:
        sub = feed.subscribe()
    except FeedFull as exc:
        raise HTTPException(503, str(exc)) from None
    # A subscription made before the LISTEN is up would miss early changes silently.
    return StreamingResponse(
        _events(request, feed, sub, settings.stream_heartbeat_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
