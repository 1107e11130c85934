"""Bearer API tokens and roles (viewer < operator < admin), and the per-IP limit on failed
authentication.

A token is 256 random bits shown once; the database keeps its sha256 only. A presented
token is hashed, looked up by digest, and the digest compared again in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Final, Literal

from fastapi import Depends, HTTPException, Request

from gridwatch.core.errors import StoreError
from gridwatch.store import Database
from gridwatch.store.audit import Actor
from gridwatch.store.auth import ROLES, insert_api_token, token_by_digest, touch_api_token

Role = Literal["viewer", "operator", "admin"]
ROLE_RANK: Final[dict[str, int]] = {"viewer": 0, "operator": 1, "admin": 2}
TOKEN_PREFIX: Final = "gw_"  # noqa: S105 - a prefix, not a secret
# gw_ + 43 url-safe characters; anything much longer is not ours and is not hashed.
_TOKEN_MAX_CHARS: Final = 200


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


async def create_token(db: Database, role: str, name: str) -> str:
    """Create an API token (``gridwatch token create --role ROLE --name NAME``) and return
    it; it is shown this once and only its hash is stored."""
    if role not in ROLES:
        raise StoreError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise StoreError("name must be 1 to 200 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    await insert_api_token(db, name=name, role=role, token_sha256=hash_token(token))
    return token


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: int
    name: str
    role: Role

    def at_least(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]

    @property
    def actor(self) -> Actor:
        return Actor(self.token_id, self.name, self.role)


class FailureLimiter:
    """At most ``max_failures`` failed attempts per client in a sliding window; then 429
    until the oldest failure leaves the window. Memory is bounded: the least recently
    failing clients are forgotten first."""

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        *,
        max_clients: int = 100_000,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients
        self._now = now
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client: str) -> deque[float] | None:
        times = self._failures.get(client)
        if times is None:
            return None
        cutoff = self._now() - self.window_s
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times

    def retry_after_s(self, client: str) -> float | None:
        """Seconds until ``client`` may try again, or None if it may now."""
        times = self._recent(client)
        if times is None or len(times) < self.max_failures:
            return None
        return max(times[0] + self.window_s - self._now(), 0.0) + 0.001

    def record_failure(self, client: str) -> None:
        times = self._recent(client) or deque(maxlen=self.max_failures)
        times.append(self._now())
        self._failures[client] = times
        self._failures.move_to_end(client)
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)


class TokenCache:
    """Verified tokens by digest for ``ttl_s`` (a database round trip per request saved)."""

    def __init__(self, ttl_s: float, *, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()

    def get(self, digest: bytes) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, digest: bytes, principal: Principal) -> None:
        if self.ttl_s <= 0:
            return
        self._entries[digest] = (time.monotonic() + self.ttl_s, principal)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


def client_ip(request: Request) -> str:
    # The direct peer: behind a proxy, uvicorn's --forwarded-allow-ips sets it from
    # X-Forwarded-For; trusting that header ourselves would let anyone pick their IP.
    return request.client.host if request.client else "unknown"


def too_many(retry_after_s: float) -> HTTPException:
    return HTTPException(
        429,
        "too many failed attempts from this address; retry later",
        headers={"Retry-After": str(max(1, round(retry_after_s)))},
    )


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": 'Bearer realm="gridwatch"'})


async def authenticate(request: Request) -> Principal:
    """The caller's principal from ``Authorization: Bearer <token>``; 401 without a valid
    token, 429 after too many invalid ones from this address."""
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:  # router- and route-level dependencies share one check
        return known
    limiter: FailureLimiter = request.app.state.auth_limiter
    ip = client_ip(request)
    wait_s = limiter.retry_after_s(ip)
    if wait_s is not None:
        raise too_many(wait_s)
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorised("authentication required: send Authorization: Bearer <token>")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorised("authentication required: send Authorization: Bearer <token>")
    principal: Principal | None = None
    if len(token) <= _TOKEN_MAX_CHARS and token.startswith(TOKEN_PREFIX):
        digest = hash_token(token)
        cache: TokenCache = request.app.state.token_cache
        principal = cache.get(digest)
        if principal is None:
            db: Database = request.app.state.db
            record = await token_by_digest(db, digest)
            if record is not None and hmac.compare_digest(record.token_sha256, digest):
                principal = Principal(record.token_id, record.name, record.role)  # type: ignore[arg-type]
                cache.put(digest, principal)
                await touch_api_token(db, record.token_id)
    if principal is None:
        limiter.record_failure(ip)
        raise _unauthorised("invalid or revoked token")
    request.state.principal = principal
    return principal


def _require(role: Role) -> Callable[[Request], object]:
    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        if not principal.at_least(role):
            raise HTTPException(403, f"this needs the {role} role; your token is {principal.role}")
        return principal

    dependency.__name__ = f"require_{role}"
    return dependency


require_viewer = _require("viewer")
require_operator = _require("operator")
require_admin = _require("admin")

ViewerDep = Annotated[Principal, Depends(require_viewer)]
OperatorDep = Annotated[Principal, Depends(require_operator)]
AdminDep = Annotated[Principal, Depends(require_admin)]
