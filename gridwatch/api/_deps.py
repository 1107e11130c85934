"""Request dependencies: the objects ``create_app`` was given, read back from ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gridwatch._clock import Clock
from gridwatch._settings import Settings
from gridwatch.api._readiness import Readiness
from gridwatch.store import Database


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _readiness(request: Request) -> Readiness:
    readiness: Readiness = request.app.state.readiness
    return readiness


def _clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


DbDep = Annotated[Database, Depends(_db)]
SettingsDep = Annotated[Settings, Depends(_settings)]
ReadinessDep = Annotated[Readiness, Depends(_readiness)]
ClockDep = Annotated[Clock, Depends(_clock)]
