"""``/api/v1/stream/outages``: Server-Sent Events of outage changes.

Events: ``outage`` (data: outage_id, op, state, zone, device_id, customers_affected,
updated_at), ``resync`` (changes may have been missed: re-read the list), ``dropped``
(this client fell too far behind and is disconnected). Comment lines keep idle
connections open.

Browsers' EventSource cannot send an Authorization header, so a client may first trade
its token for a one-use ticket (``POST /stream/tickets``, valid 60 s) and open the stream
with ``?ticket=``; clients that can send headers use their bearer token directly.

A stream outlives any one request, so it re-checks that its token is still live at least
every ``token_cache_s`` (the same bound a revoked token has on ordinary requests) and ends
with ``revoked`` when it is not; a ticket is refused once its token is revoked.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from gridwatch.api._auth import Principal, ViewerDep, authenticate
from gridwatch.api._deps import ApiSettingsDep, FeedDep
from gridwatch.api._errors import ERROR_RESPONSES
from gridwatch.api._feed import FeedFull, OutageFeed, Subscription
from gridwatch.core.errors import StoreError
from gridwatch.store import Database
from gridwatch.store.auth import token_is_live

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
    feed: OutageFeed,
    sub: Subscription,
    heartbeat_s: float,
    still_live: Callable[[], Awaitable[bool]],
    recheck_s: float,
) -> AsyncIterator[bytes]:
    try:
        yield b": connected\nretry: 2000\n\n"
        recheck_at = time.monotonic() + recheck_s
        while True:
            wait_s = min(heartbeat_s, max(recheck_at - time.monotonic(), 0.0))
            event = await sub.next_event(wait_s)
            if time.monotonic() >= recheck_at:
                if not await still_live():
                    yield b'event: revoked\ndata: {"reason": "token revoked"}\n\n'
                    return
                recheck_at = time.monotonic() + recheck_s
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
    db: Database = request.app.state.db
    principal: Principal | None
    if ticket is not None and "authorization" not in request.headers:
        tickets: StreamTickets = request.app.state.stream_tickets
        principal = tickets.redeem(ticket)
        if principal is None or not await token_is_live(db, principal.token_id):
            raise HTTPException(401, "stream ticket unknown, used, expired or revoked")
    else:
        principal = await authenticate(request)
    token_id = principal.token_id

    async def still_live() -> bool:
        try:
            return await token_is_live(db, token_id)
        except StoreError:
            return True  # a database blip must not cut every stream; re-checked next time

    # With no token cache, still re-check at every heartbeat rather than on every event.
    recheck_s = settings.token_cache_s or settings.stream_heartbeat_s
    try:
        sub = feed.subscribe()
    except FeedFull as exc:
        raise HTTPException(503, str(exc)) from None
    # A subscription made before the LISTEN is up would miss early changes silently.
    return StreamingResponse(
        _events(feed, sub, settings.stream_heartbeat_s, still_live, recheck_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
