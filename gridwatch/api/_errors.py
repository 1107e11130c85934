"""Every error leaves the API as JSON: ``{"error": code, "detail": text, "fields": [...]}``.

Validation errors name the field (``limit``, ``start``), not pydantic's location tuple.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from gridwatch.api._models import ErrorBody, FieldProblem
from gridwatch.core.errors import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "A parameter is invalid; `fields` names it"},
    503: {"model": ErrorBody, "description": "The database is unavailable or the query timed out"},
}


def _code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def error_response(
    status: int, detail: str, *, error: str | None = None, fields: list[FieldProblem] | None = None
) -> JSONResponse:
    body = ErrorBody(error=error or _code(status), detail=detail, fields=fields or [])
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


def _field_problem(err: dict[str, Any]) -> FieldProblem:
    loc = [str(part) for part in err.get("loc", ())]
    location = loc[0] if loc else "request"
    field = ".".join(loc[1:]) or location
    return FieldProblem(field=field, location=location, message=str(err.get("msg", "invalid")))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [_field_problem(err) for err in exc.errors()]
    detail = "; ".join(f"{p.field}: {p.message}" for p in problems) or "invalid request"
    return error_response(422, detail, error="invalid_request", fields=problems)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    response = error_response(exc.status_code, str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable for %s: %s", request.url.path, exc)
    return error_response(
        503,
        "the database is unavailable or the query took too long; retry, or narrow the window",
        error="database_unavailable",
    )


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("database error for %s: %s", request.url.path, exc)
    return error_response(500, "database error", error="database_error")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error for %s", request.url.path, exc_info=exc)
    return error_response(500, "internal error", error="internal_error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(Exception, _unexpected)
