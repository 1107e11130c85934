"""SQL for API tokens: stored as sha256 digests only, looked up by digest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gridwatch.core.errors import StoreError
from gridwatch.store.database import Database

ROLES = ("viewer", "operator", "admin")


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token_id: int
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None
    token_sha256: bytes


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as an administrator may see it: never its secret, never its digest."""

    token_id: int
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


_INFO_COLUMNS = "token_id, name, role, created_at, last_used_at, revoked_at"
_BIGINT_MAX = 2**63 - 1


async def insert_api_token(db: Database, *, name: str, role: str, token_sha256: bytes) -> int:
    if role not in ROLES:
        raise StoreError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if len(token_sha256) != 32:
        raise StoreError("token digest must be 32 bytes")
    async with db.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO api_tokens (name, role, token_sha256) VALUES (%s, %s, %s)"
            " RETURNING token_id",
            [name, role, token_sha256],
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def token_by_digest(db: Database, token_sha256: bytes) -> TokenRecord | None:
    """The live (not revoked) token with this digest. The digest is an index key; the
    caller compares the digest again in constant time before trusting the row."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT token_id, name, role, created_at, revoked_at, token_sha256 FROM api_tokens"
            " WHERE token_sha256 = %s AND revoked_at IS NULL",
            [token_sha256],
        )
        row = await cur.fetchone()
    if row is None:
        return None
    return TokenRecord(int(row[0]), str(row[1]), str(row[2]), row[3], row[4], bytes(row[5]))


async def touch_api_token(db: Database, token_id: int) -> None:
    """Record use, at most once a minute per token (a write per request would be waste)."""
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE api_tokens SET last_used_at = now() WHERE token_id = %s"
            " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
            [token_id],
        )


async def token_is_live(db: Database, token_id: int) -> bool:
    """Whether the token exists and is not revoked (long-lived streams re-check this)."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT 1 FROM api_tokens WHERE token_id = %s AND revoked_at IS NULL", [token_id]
        )
        return await cur.fetchone() is not None


async def revoke_api_token(db: Database, token_id: int) -> bool:
    async with db.connection() as conn:
        cur = await conn.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE token_id = %s AND revoked_at IS NULL",
            [token_id],
        )
        return cur.rowcount == 1


def _info(row: tuple[object, ...]) -> TokenInfo:
    token_id, name, role, created_at, last_used_at, revoked_at = row
    assert isinstance(created_at, datetime)
    return TokenInfo(
        int(str(token_id)),
        str(name),
        str(role),
        created_at,
        last_used_at if isinstance(last_used_at, datetime) else None,
        revoked_at if isinstance(revoked_at, datetime) else None,
    )


async def list_api_tokens(db: Database) -> list[TokenInfo]:
    """Every token, live and revoked, oldest first."""
    async with db.connection() as conn:
        cur = await conn.execute(f"SELECT {_INFO_COLUMNS} FROM api_tokens ORDER BY token_id")
        return [_info(r) for r in await cur.fetchall()]


async def api_tokens_matching(db: Database, name_or_id: str) -> list[TokenInfo]:
    """Tokens whose name is ``name_or_id``, or whose id it is (when it is one), by id."""
    token_id = int(name_or_id) if name_or_id.isascii() and name_or_id.isdigit() else None
    if token_id is not None and token_id > _BIGINT_MAX:
        token_id = None  # not an id any row can have; still a possible name
    async with db.connection() as conn:
        cur = await conn.execute(
            f"SELECT {_INFO_COLUMNS} FROM api_tokens"
            " WHERE name = %s OR token_id = %s ORDER BY token_id",
            [name_or_id, token_id],
        )
        return [_info(r) for r in await cur.fetchall()]
