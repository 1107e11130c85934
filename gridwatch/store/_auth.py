"""SQL for API tokens: stored as sha256 digests only, looked up by digest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gridwatch._errors import StoreError
from gridwatch.store._database import Database

ROLES = ("viewer", "operator", "admin")


@dataclass(frozen=True, slots=True)
class TokenRecord:
    token_id: int
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None
    token_sha256: bytes


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


async def revoke_api_token(db: Database, token_id: int) -> bool:
    async with db.connection() as conn:
        cur = await conn.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE token_id = %s AND revoked_at IS NULL",
            [token_id],
        )
        return cur.rowcount == 1
