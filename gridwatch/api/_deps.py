"""Request dependencies: the objects ``create_app`` put on ``app.state``, read back.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread
pool, and a thread hop per dependency per request was a measurable share of the outage
list's cost under load (docs/benchmarks/api.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from gridwatch.api._api_settings import ApiSettings
from gridwatch.api._feed import OutageFeed
from gridwatch.api._readiness import Readiness
from gridwatch.api._response_cache import ResponseCache
from gridwatch.core.clock import Clock
from gridwatch.core.settings import Settings
from gridwatch.outages import OperatorDesk
from gridwatch.store import Database


def _from_state(name: str) -> Callable[[Request], Awaitable[Any]]:
    async def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    dependency.__name__ = f"app_state_{name}"
    return dependency


DbDep = Annotated[Database, Depends(_from_state("db"))]
SettingsDep = Annotated[Settings, Depends(_from_state("settings"))]
ReadinessDep = Annotated[Readiness, Depends(_from_state("readiness"))]
ClockDep = Annotated[Clock, Depends(_from_state("clock"))]
ApiSettingsDep = Annotated[ApiSettings, Depends(_from_state("api_settings"))]
FeedDep = Annotated[OutageFeed, Depends(_from_state("outage_feed"))]
ListCacheDep = Annotated[ResponseCache, Depends(_from_state("outage_list_cache"))]
DeskDep = Annotated[OperatorDesk, Depends(_from_state("operator_desk"))]
