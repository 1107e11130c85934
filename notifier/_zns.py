"""Zalo Notification Service (ZNS): template messages to a phone number through a Zalo
Official Account. The one place ZNS and Zalo OAuth errors become notifier errors.

API shapes (developers.zalo.me, read through public client code; see docs/notifications.md
for what is assumed): ``POST {base}/message/template`` with header ``access_token`` and JSON
``{phone: "84...", template_id, template_data: {...}, tracking_id}``; the answer is HTTP 200
with ``{"error": 0, "data": {"msg_id": ...}}`` or ``{"error": <negative code>, "message": ...}``.
Tokens: ``POST {oauth}/v4/oa/access_token`` (form ``refresh_token, app_id,
grant_type=refresh_token``, header ``secret_key``) returns a new access token *and a new
refresh token* (the old one stops working) with ``expires_in`` seconds (a string).

A notice's ``body`` for this channel is the template parameters as JSON (rendered at enqueue
from the same notice data as the SMS, see ``zns_params``); ``tracking_id`` is the outbox's
idempotency key, so a resend after an unknown outcome is the same message to Zalo.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import aiohttp

from gridwatch.core.errors import ConfigError
from gridwatch.core.settings import Settings
from notifier._channel import Notice, RateLimiter
from notifier._errors import OutcomeUnknownError, PermanentSendError, TransientSendError
from notifier._events import LANGUAGES, NOTICE_KINDS
from notifier._phone import mask_phone

log = logging.getLogger(__name__)

DEFAULT_BASE_URL: Final = "https://business.openapi.zalo.me"
DEFAULT_OAUTH_URL: Final = "https://oauth.zaloapp.com"

# Zalo's documented ZNS error codes this channel acts on. The recipient cannot be reached
# on Zalo: the notice goes to the customer's next channel (SMS), never retried on ZNS.
CANNOT_DELIVER: Final[Mapping[int, str]] = {
    -108: "phone number not valid for Zalo",
    -114: "recipient cannot receive ZNS (account state, opt-out or old Zalo version)",
    -118: "phone number has no Zalo account, or it is deactivated",
    -119: "Zalo account cannot receive ZNS",
    -139: "recipient refused ZNS",
}
# The template or the account cannot carry this notice now: also the next channel, and an
# operator must act (a template rejected or not yet approved; daily quota or balance out).
TEMPLATE_REFUSED: Final[Mapping[int, str]] = {
    -109: "template id not valid",
    -112: "template parameters not valid",
    -117: "OA not permitted to use this template",
    -131: "template rejected or not approved by Zalo",
}
QUOTA: Final[Mapping[int, str]] = {
    -115: "OA balance insufficient",
    -144: "OA daily ZNS quota exceeded",
    -147: "template daily quota exceeded",
}
TOKEN_INVALID: Final = -124  # access token invalid or expired: refresh, then retry once
RATE_LIMITED: Final = -32  # requests per minute exceeded: transient
TRACKING_ID_MAX: Final = 48  # assumed limit (see docs/notifications.md)
# Zalo's parameter types cap a value at 30 characters, an address at 200, custom text more
# (assumed from the template editor's types; the template itself is at most 400 characters).
# 50 for the ETR window: "not known yet, we will update you" must not be cut.
PARAM_MAX: Final[Mapping[str, int]] = {"where": 200, "why": 100, "etr_window": 50}
PARAM_DEFAULT_MAX: Final = 30
_TEMPLATE_ID = re.compile(r"^[0-9]{1,20}$")
_VN_E164 = re.compile(r"^\+84[0-9]{8,10}$")


def tracking_id(idempotency_key: str) -> str:
    """The outbox idempotency key, or a stable digest of it when it is longer than ZNS takes."""
    if len(idempotency_key) <= TRACKING_ID_MAX and idempotency_key.isascii():
        return idempotency_key
    return "h" + hashlib.blake2b(idempotency_key.encode(), digest_size=20).hexdigest()


def zns_phone(e164: str | None) -> str:
    """``+84912345678`` -> ``84912345678``; ZNS reaches Vietnamese numbers only."""
    if not e164 or not _VN_E164.match(e164):
        raise PermanentSendError("zns_not_vn_number", "ZNS reaches Vietnamese (+84) numbers only")
    return e164[1:]


def zns_params(params: Mapping[str, str], ref: str) -> dict[str, str]:
    """Template data from the notice's values, each cut to what a ZNS parameter holds."""
    out: dict[str, str] = {}
    for name, value in params.items():
        limit = PARAM_MAX.get(name, PARAM_DEFAULT_MAX)
        text = " ".join(str(value).split())
        out[name] = text if len(text) <= limit else text[: limit - 1] + "…"
    out["ref"] = ref
    return out


def parse_template_ids(spec: str) -> dict[tuple[str, str], str]:
    """``outage_detected.vi=123456,restored.en=234567`` -> {(kind, language): id}. Every
    problem is named at once (a typo fails the deploy, not the 3 a.m. outage)."""
    problems: list[str] = []
    out: dict[tuple[str, str], str] = {}
    if len(spec) > 10_000:
        raise ValueError("ZNS template ids: longer than 10000 characters")
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, value = item.partition("=")
        kind, dot, language = key.strip().rpartition(".")
        value = value.strip()
        if not sep or not dot:
            problems.append(f"{item[:60]!r}: write kind.language=template_id")
            continue
        if kind not in NOTICE_KINDS:
            problems.append(f"{kind[:40]!r}: unknown notice kind; known: {', '.join(NOTICE_KINDS)}")
        if language not in LANGUAGES:
            problems.append(f"{language[:10]!r}: unknown language; known: {', '.join(LANGUAGES)}")
        if not _TEMPLATE_ID.match(value):
            problems.append(f"{key.strip()[:60]}: template id must be digits, got {value[:30]!r}")
        if (kind, language) in out:
            problems.append(f"{key.strip()[:60]}: given twice")
        out[(kind, language)] = value
    if problems:
        raise ValueError("ZNS template ids:\n  " + "\n  ".join(problems))
    return out


@dataclass(frozen=True, slots=True)
class ZnsToken:
    access_token: str
    refresh_token: str
    expires_at_s: float  # wall clock


class ZnsTokenStore(Protocol):
    """Where the Official Account's token pair lives between refreshes."""

    async def update(
        self, change: Callable[[ZnsToken | None], Awaitable[ZnsToken | None]]
    ) -> ZnsToken | None:
        """Run ``change`` on the stored pair with every other refresher held off; store
        what it returns (None: leave as is). Returns the pair now stored."""
        ...


class MemoryTokenStore:
    """One process's pair (tests, a single dispatcher)."""

    def __init__(self, token: ZnsToken | None = None) -> None:
        self._token = token
        self._lock = asyncio.Lock()

    async def update(
        self, change: Callable[[ZnsToken | None], Awaitable[ZnsToken | None]]
    ) -> ZnsToken | None:
        async with self._lock:
            new = await change(self._token)
            if new is not None:
                self._token = new
            return self._token


@dataclass(frozen=True, slots=True)
class ZnsConfig:
    app_id: str
    app_secret: str
    oa_id: str
    templates: Mapping[tuple[str, str], str]
    # First pair when the store holds none (from the OA's authorisation).
    access_token: str = ""
    refresh_token: str = ""
    access_expires_at_s: float = 0.0
    base_url: str = DEFAULT_BASE_URL
    oauth_url: str = DEFAULT_OAUTH_URL
    messages_per_s: float = 50.0
    timeout_s: float = 10.0
    # Refresh this long before the access token expires, so no send meets an expired token.
    refresh_margin_s: float = 600.0
    wall_clock: Callable[[], float] = field(default=time.time)

    def __post_init__(self) -> None:
        problems = []
        for name in ("app_id", "app_secret", "oa_id"):
            if not getattr(self, name):
                problems.append(f"{name} is required")
        if not (self.access_token or self.refresh_token):
            problems.append("an access_token or a refresh_token is required")
        if not self.templates:
            problems.append("no template ids: ZNS would refuse every notice")
        for url in (self.base_url, self.oauth_url):
            if not url.startswith(("https://", "http://127.", "http://localhost")):
                problems.append(f"{url[:80]!r}: use https (http only on loopback)")
        if not (self.messages_per_s > 0 and math.isfinite(self.messages_per_s)):
            problems.append("messages_per_s must be a positive number")
        if not (0 < self.timeout_s <= 120):
            problems.append("timeout_s must be within (0, 120]")
        if problems:
            raise ValueError("ZNS configuration: " + "; ".join(problems))


class ZnsChannel:
    """ZNS through the Official Account API. Errors: notifier errors only."""

    name = "zns"

    def __init__(self, config: ZnsConfig, store: ZnsTokenStore | None = None) -> None:
        self._config = config
        self._limiter = RateLimiter(config.messages_per_s)
        self._session: aiohttp.ClientSession | None = None
        first = None
        if config.access_token or config.refresh_token:
            first = ZnsToken(config.access_token, config.refresh_token, config.access_expires_at_s)
        self._store: ZnsTokenStore = store or MemoryTokenStore(first)
        self._first = first
        self._token: ZnsToken | None = None
        self._lock = asyncio.Lock()
        self.refreshes = 0

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Made lazily: the session belongs to the running loop.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._config.timeout_s)
            )
        return self._session

    # --- tokens ---------------------------------------------------------------------------
    def _fresh(self, token: ZnsToken | None) -> bool:
        return (
            token is not None
            and bool(token.access_token)
            and token.expires_at_s - self._config.refresh_margin_s > self._config.wall_clock()
        )

    async def _access_token(self, *, stale: str | None = None) -> str:
        token = self._token
        if stale is None and self._fresh(token):
            assert token is not None
            return token.access_token
        async with self._lock:
            if (
                self._token is not None
                and self._token.access_token != stale
                and self._fresh(self._token)
            ):
                return self._token.access_token

            async def change(stored: ZnsToken | None) -> ZnsToken | None:
                current = stored or self._first
                if current is None:
                    raise TransientSendError("no ZNS token pair stored")
                if self._fresh(current) and current.access_token != stale:
                    # Another process refreshed already (or the configured pair is good).
                    return None if stored is not None else current
                return await self._refresh(current)

            stored = await self._store.update(change)
            if stored is None:
                raise TransientSendError("no ZNS token pair stored")
            self._token = stored
            return stored.access_token

    async def _refresh(self, current: ZnsToken) -> ZnsToken:
        if not current.refresh_token:
            raise TransientSendError("ZNS access token expired and no refresh token is set")
        cfg = self._config
        try:
            async with self._http().post(
                f"{cfg.oauth_url.rstrip('/')}/v4/oa/access_token",
                data={
                    "refresh_token": current.refresh_token,
                    "app_id": cfg.app_id,
                    "grant_type": "refresh_token",
                },
                headers={"secret_key": cfg.app_secret},
            ) as resp:
                status = resp.status
                raw = await resp.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransientSendError(
                f"cannot refresh the ZNS token: {type(exc).__name__}"
            ) from None
        data = _json_object(raw)
        access = data.get("access_token") if data else None
        refresh = data.get("refresh_token") if data else None
        try:
            expires_in = float(data.get("expires_in", "")) if data else math.nan
        except (TypeError, ValueError):
            expires_in = math.nan
        if (
            status != 200
            or not isinstance(access, str)
            or not access
            or not isinstance(refresh, str)
            or not refresh
            or not (0 < expires_in < 10**7)
        ):
            code = data.get("error") if data else None
            # Logged loudly: until an operator re-authorises the OA, ZNS notices fall back.
            log.error(
                "ZNS token refresh refused",
                extra={"http_status": status, "zalo_error": str(code)[:20]},
            )
            raise TransientSendError(f"ZNS token refresh refused (HTTP {status}, error {code})")
        self.refreshes += 1
        log.info("ZNS access token refreshed", extra={"expires_in_s": expires_in})
        return ZnsToken(access, refresh, cfg.wall_clock() + expires_in)

    # --- sending --------------------------------------------------------------------------
    def _template(self, notice: Notice) -> str:
        template = self._config.templates.get((notice.kind, notice.language))
        if template is None:
            template = self._config.templates.get((notice.kind, "vi"))
        if template is None:
            raise PermanentSendError(
                "zns_no_template", f"no ZNS template registered for {notice.kind}"
            )
        return template

    async def send(self, notice: Notice) -> str:
        phone = zns_phone(notice.address)
        template = self._template(notice)
        try:
            params = json.loads(notice.body)
        except ValueError:
            params = None
        if not isinstance(params, dict):
            raise PermanentSendError("zns_bad_params", "notice body is not ZNS template data")
        payload = {
            "phone": phone,
            "template_id": template,
            "template_data": params,
            "tracking_id": tracking_id(notice.idempotency_key),
        }
        await self._limiter.acquire()
        stale: str | None = None
        for _ in range(2):
            access = await self._access_token(stale=stale)
            error, data, message = await self._post(payload, access)
            if error == TOKEN_INVALID and stale is None:
                stale = access  # refresh once, then resend (the first was refused, not sent)
                continue
            break
        if error == 0:
            msg_id = data.get("msg_id") if isinstance(data, dict) else None
            if not isinstance(msg_id, str | int) or not str(msg_id):
                raise OutcomeUnknownError("ZNS answered success without a msg_id")
            log.debug(
                "zns sent",
                extra={"notification_id": notice.notification_id, "to": mask_phone(notice.address)},
            )
            return str(msg_id)
        raise _translate(error, message)

    async def _post(
        self, payload: dict[str, Any], access: str
    ) -> tuple[int, dict[str, Any] | None, str]:
        url = f"{self._config.base_url.rstrip('/')}/message/template"
        try:
            async with self._http().post(
                url, json=payload, headers={"access_token": access}
            ) as resp:
                status = resp.status
                raw = await resp.read()
        except aiohttp.ClientConnectorError as exc:
            # The connection never opened: nothing left, safe to retry.
            raise TransientSendError(f"cannot connect to ZNS: {type(exc).__name__}") from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise OutcomeUnknownError(f"ZNS call interrupted: {type(exc).__name__}") from None
        if status == 429 or status >= 500:
            raise TransientSendError(f"ZNS HTTP {status}")
        body = _json_object(raw)
        if body is None or not isinstance(body.get("error"), int):
            if status != 200:
                raise TransientSendError(f"ZNS HTTP {status} without a ZNS error")
            raise OutcomeUnknownError("unreadable ZNS response")
        data = body.get("data")
        return (
            int(body["error"]),
            data if isinstance(data, dict) else None,
            str(body.get("message", ""))[:200],
        )

    async def find_sent(self, notice: Notice) -> str | None:
        """ZNS has no log to search by tracking id; the resend carries the same tracking id,
        which Zalo is assumed to treat as the same message (docs/notifications.md)."""
        return None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _json_object(raw: bytes) -> dict[str, Any] | None:
    if len(raw) > 1_000_000:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _translate(error: int, message: str) -> Exception:
    code = f"zns_{abs(error)}" if error < 0 else f"zns_{error}"
    for table in (CANNOT_DELIVER, TEMPLATE_REFUSED, QUOTA):
        if error in table:
            if table is not CANNOT_DELIVER:
                log.error("ZNS refused by account or template", extra={"zalo_error": error})
            return PermanentSendError(code, f"ZNS error {error}: {table[error]}")
    if error == TOKEN_INVALID:
        return TransientSendError("ZNS access token refused after a refresh")
    if error == RATE_LIMITED:
        return TransientSendError("ZNS rate limit", retry_after_s=60.0)
    return PermanentSendError(code, f"ZNS error {error}: {message or 'unknown'}")


def zns_channel_from_settings(
    settings: Settings,
    token_store_for: Callable[[str], ZnsTokenStore],
    *,
    timeout_s: float = 10.0,
    **given: str | float | None,
) -> ZnsChannel | None:
    """The ZNS channel ``GRIDWATCH_ZNS_*`` configures, with any ``given`` value (the
    ``ZnsConfig`` field names app_id, app_secret, oa_id, access_token, refresh_token,
    templates, base_url, oauth_url, messages_per_s) winning; None without an app id.
    ``token_store_for(oa_id)``: where the OA's token pair lives (the application plugs in
    the database's, shared by every dispatcher). The service and the dispatcher process
    (``python -m gridwatch.app.dispatch_process dispatch``) both build it here."""

    def pick(name: str, configured: str | float | None) -> str | float | None:
        value = given.get(name)
        return value if value else configured

    app_id = pick("app_id", settings.zns_app_id)
    if not app_id:
        return None
    oa_id = str(pick("oa_id", settings.zns_oa_id) or "")
    try:
        config = ZnsConfig(
            app_id=str(app_id),
            app_secret=str(pick("app_secret", settings.zns_app_secret.get_secret_value())),
            oa_id=oa_id,
            templates=parse_template_ids(str(pick("templates", settings.zns_templates))),
            access_token=str(pick("access_token", "")),
            refresh_token=str(pick("refresh_token", settings.zns_refresh_token.get_secret_value())),
            base_url=str(pick("base_url", settings.zns_api_base_url) or DEFAULT_BASE_URL),
            oauth_url=str(pick("oauth_url", settings.zns_oauth_base_url) or DEFAULT_OAUTH_URL),
            messages_per_s=float(pick("messages_per_s", settings.zns_messages_per_s) or 0.0),
            timeout_s=timeout_s,
        )
    except ValueError as exc:
        raise ConfigError(f"GRIDWATCH_ZNS_*: {exc}") from None
    return ZnsChannel(config, token_store_for(oa_id))
