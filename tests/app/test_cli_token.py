"""``gridwatch token list`` / ``token revoke`` against the real PostgreSQL: what the list
shows (never a secret or digest), how NAME_OR_ID is resolved, the errors a bad argument
gets, and that a revoked token gets 401 from the API within ``token_cache_s``."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from gridwatch.api import create_token
from gridwatch.app.cli import main
from gridwatch.store import Database
from tests.api_support import client_for, make_app

CACHE_S = 0.5  # the API's token cache in these tests: the bound on revocation


@pytest.fixture
def cli_env(database_url: str, schema_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI talks to the test's own schema."""
    monkeypatch.setenv("GRIDWATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("GRIDWATCH_DATABASE_SCHEMA", schema_name)
    monkeypatch.setenv("GRIDWATCH_LOG_FORMAT", "text")


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``gridwatch ARGV`` in-process (its own event loop, in a thread): exit code, out, err."""
    capsys.readouterr()
    try:
        code = await asyncio.to_thread(main, list(argv))
    except SystemExit as exc:  # argparse refusing an argument
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


async def _token_id(db: Database, name: str) -> int:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT token_id FROM api_tokens WHERE name = %s ORDER BY token_id LIMIT 1", [name]
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_list_shows_no_secret_and_revoke_locks_the_token_out(
    db: Database, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    night = await create_token(db, "operator", "night shift")
    day = await create_token(db, "viewer", "day shift")
    code, out, err = await _cli(capsys, "token", "list")
    assert code == 0, err
    header, *lines = out.splitlines()
    assert header.split() == ["ID", "NAME", "ROLE", "CREATED", "LAST", "USED", "REVOKED"]
    assert [ln.split()[1:4] for ln in lines] == [
        ["night", "shift", "operator"],
        ["day", "shift", "viewer"],
    ]
    assert all(ln.rstrip().endswith(" -") for ln in lines)  # none revoked
    for secret in (night, day):
        assert secret not in out
        assert hashlib.sha256(secret.encode()).hexdigest() not in out
    assert "gw_" not in out

    cached = make_app(db, token_cache_s=CACHE_S)
    uncached = make_app(db, token_cache_s=0)
    headers = {"Authorization": f"Bearer {night}"}
    async with client_for(cached) as api, client_for(uncached) as api_now:
        assert (await api.get("/api/v1/outages", headers=headers)).status_code == 200  # cached
        code, out, err = await _cli(capsys, "token", "revoke", "night shift")
        assert code == 0, err
        assert "revoked token 1 (night shift, operator)" in out
        assert "GRIDWATCH_TOKEN_CACHE_S" in out
        # No cache: refused at once. With the cache: refused once the entry expires.
        assert (await api_now.get("/api/v1/outages", headers=headers)).status_code == 401
        await asyncio.sleep(CACHE_S + 0.2)
        refused = await api.get("/api/v1/outages", headers=headers)
        assert refused.status_code == 401
        assert refused.json()["detail"] == "invalid or revoked token"
        # The other token is untouched.
        other = {"Authorization": f"Bearer {day}"}
        assert (await api_now.get("/api/v1/outages", headers=other)).status_code == 200

    code, out, _ = await _cli(capsys, "token", "list")
    night_line = next(ln for ln in out.splitlines() if "night shift" in ln)
    assert not night_line.rstrip().endswith(" -")  # a revocation time
    code, out, _ = await _cli(capsys, "token", "list", "--live")
    assert "night shift" not in out
    assert "day shift" in out
    # Revoking again is no error: the token is revoked, as asked.
    code, out, err = await _cli(capsys, "token", "revoke", "1")
    assert code == 0, err
    assert "already revoked" in out


async def test_revoke_by_id_and_ambiguous_names(
    db: Database, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    await create_token(db, "viewer", "kiosk")  # id 1
    await create_token(db, "viewer", "kiosk")  # id 2: names are not unique
    await create_token(db, "admin", "1")  # id 3, named like token 1's id
    code, _, err = await _cli(capsys, "token", "revoke", "kiosk")
    assert code == 1
    assert "2 live tokens are named 'kiosk' (ids 1, 2): revoke one by its id" in err
    code, _, err = await _cli(capsys, "token", "revoke", "1")
    assert code == 1
    assert "'1' is the id of token 1 and the name of token(s) 3: add --by id or --by name" in err
    code, out, err = await _cli(capsys, "token", "revoke", "1", "--by", "name")
    assert code == 0, err
    assert "revoked token 3 (1, admin)" in out
    code, out, err = await _cli(capsys, "token", "revoke", "2")
    assert code == 0, err
    assert "revoked token 2 (kiosk, viewer)" in out
    # Now one live "kiosk" is left: the name is enough.
    code, out, err = await _cli(capsys, "token", "revoke", "  kiosk ")
    assert code == 0, err
    assert "revoked token 1 (kiosk, viewer)" in out
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL")
        assert await cur.fetchone() == (0,)


@pytest.mark.parametrize(
    ("ref", "by"),
    [
        ("nobody", None),
        ("x' OR '1'='1", None),
        ("9" * 30, None),  # beyond any bigint id
        ("2", "name"),
        ("day shift", "id"),
        ("Night Shift", None),  # names match exactly
    ],
)
async def test_unknown_token_is_a_clear_error(
    db: Database,
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
    ref: str,
    by: str | None,
) -> None:
    await create_token(db, "operator", "night shift")
    await create_token(db, "viewer", "day shift")
    code, out, err = await _cli(capsys, "token", "revoke", ref, *(["--by", by] if by else []))
    assert code == 1
    assert out == ""
    assert err.startswith("gridwatch: error: no API token")
    assert "(see: gridwatch token list)" in err
    assert len(err.splitlines()) == 1  # one line, no traceback
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL")
        assert await cur.fetchone() == (2,)


@pytest.mark.parametrize(
    "argv",
    [
        ["token", "revoke"],
        ["token", "revoke", ""],
        ["token", "revoke", "   "],
        ["token", "revoke", "x" * 10_000],
        ["token", "revoke", "kiosk", "--by", "role"],
        ["token", "list", "--secrets"],
    ],
)
def test_bad_token_arguments_exit_2_with_a_reason(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err
    assert len(err) < 4000  # an oversized argument is not echoed back whole
