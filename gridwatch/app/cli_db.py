"""The CLI's first contact with the database: one connection attempt before the pool.

The pool retries a failed connection with backoff for its whole timeout (four warnings over
10 s) and then reports only "pool initialization incomplete", so a database that does not
exist or a malformed URL showed its cause only in the warnings. One plain connection
attempt fails at once with libpq's reason, which is what an operator at a terminal needs.
"""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict

from gridwatch.core.errors import ConfigError, StoreUnavailable

CONNECT_TIMEOUT_S = 10  # the pool's own timeout: a host that does not answer at all
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^:/@?#]*:([^@/?#]*)@", re.IGNORECASE)
# libpq's wrapping around the cause: "connection failed: connection to server at "h",
# port 5432 failed: FATAL:  <cause>" and its multi-line hints.
_LIBPQ_PREFIXES = re.compile(
    r"^(?:connection (?:failed|is bad): )?"
    r"(?:connection to server (?:at|on socket) \"[^\"]*\"(?:, port \d+)? failed: )?"
    r"(?:FATAL: )?"
)


def _redacted(message: str, url: str) -> str:
    """libpq echoes parts of a malformed URL: never the password among them."""
    m = _URL_PASSWORD.match(url)
    if m and m.group(1):
        message = message.replace(m.group(1), "***")
    return message


def one_line(message: str) -> str:
    lines = (" ".join(line.split()) for line in message.splitlines())
    return "; ".join(line for line in lines if line)


def database_target(url: str) -> str:
    """``dbname on host:port`` as the URL names them (never the user's password)."""
    params = conninfo_to_dict(url)
    host = params.get("host") or "the local socket"
    port = f":{params['port']}" if params.get("port") and params.get("host") else ""
    return f"database {params.get('dbname') or params.get('user') or '(default)'} on {host}{port}"


async def check_database(url: str) -> None:
    """Connect once and hang up: ``ConfigError`` for a URL libpq cannot read,
    ``StoreUnavailable`` with libpq's cause (one line) when the database refuses."""
    try:
        target = database_target(url)
    except psycopg.Error as exc:
        raise ConfigError(
            f"GRIDWATCH_DATABASE_URL is malformed: {_redacted(one_line(str(exc)), url)}"
            " (expected postgresql://user[:password]@host[:port]/database)"
        ) from None
    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        message = one_line(str(exc))
        cause = _LIBPQ_PREFIXES.sub("", message)
        if message.startswith("connection is bad: "):
            # libpq refused an option's value (port, sslmode, ...) before any network.
            raise ConfigError(
                f"GRIDWATCH_DATABASE_URL is malformed: {_redacted(cause, url)}"
            ) from None
        raise StoreUnavailable(
            f"cannot connect to {target} (GRIDWATCH_DATABASE_URL): {_redacted(cause, url)}"
        ) from None
    await conn.close()
