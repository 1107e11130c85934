"""SMS through Twilio's official library (async client). The one place Twilio errors become
notifier errors."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from notifier._channel import Notice, RateLimiter
from notifier._errors import OutcomeUnknownError, PermanentSendError, TransientSendError
from notifier._phone import mask_phone

log = logging.getLogger(__name__)

# Twilio's request logger prints query parameters (recipient numbers): keep it quiet.
_twilio_http_log = logging.getLogger("notifier.twilio_http")
_twilio_http_log.setLevel(logging.WARNING)

# Recorded and never retried: invalid 'To', unsubscribed recipient, not SMS-capable,
# region not enabled, blocked, unreachable carrier for good, body too long.
PERMANENT_CODES = frozenset({21211, 21408, 21610, 21612, 21614, 21606, 21617, 30004, 30005, 30006})


@dataclass(frozen=True, slots=True)
class TwilioConfig:
    account_sid: str
    auth_token: str
    from_number: str | None = None
    messaging_service_sid: str | None = None
    # Public URL of the status-callback webhook; the notice id is added as ?n=<id>.
    status_callback_url: str | None = None
    # Replaces https://api.twilio.com (a loopback stand-in in tests and benchmarks).
    base_url: str | None = None
    messages_per_s: float = 100.0
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not (self.from_number or self.messaging_service_sid):
            raise ValueError("TwilioConfig needs a from_number or a messaging_service_sid")


class TwilioSmsChannel:
    name = "sms"

    def __init__(self, config: TwilioConfig) -> None:
        self._config = config
        self._limiter = RateLimiter(config.messages_per_s)
        self._client: Any = None
        self._http: AsyncTwilioHttpClient | None = None

    def _api(self) -> Any:
        if self._client is None:
            # Created lazily: the aiohttp session must be made inside the running loop.
            self._http = AsyncTwilioHttpClient(
                timeout=self._config.timeout_s, logger=_twilio_http_log
            )
            client = Client(
                self._config.account_sid, self._config.auth_token, http_client=self._http
            )
            if self._config.base_url:
                client.api.base_url = self._config.base_url.rstrip("/")
            self._client = client
        return self._client

    def _callback(self, notice: Notice) -> str | None:
        url = self._config.status_callback_url
        if not url:
            return None
        return f"{url}{'&' if '?' in url else '?'}n={notice.notification_id}"

    async def send(self, notice: Notice) -> str:
        if not notice.address:
            raise PermanentSendError("no_address", "notice has no phone number")
        await self._limiter.acquire()
        kwargs: dict[str, Any] = {"to": notice.address, "body": notice.body}
        if self._config.messaging_service_sid:
            kwargs["messaging_service_sid"] = self._config.messaging_service_sid
        else:
            kwargs["from_"] = self._config.from_number
        if callback := self._callback(notice):
            kwargs["status_callback"] = callback
        try:
            # The async http client ignores its own timeout setting, so bound the call here.
            message = await asyncio.wait_for(
                self._api().messages.create_async(**kwargs), self._config.timeout_s
            )
        except TwilioRestException as exc:
            raise _translate(exc) from None
        except aiohttp.ClientConnectorError as exc:
            # The connection never opened: the request did not leave, safe to retry.
            raise TransientSendError(f"cannot connect to Twilio: {type(exc).__name__}") from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise OutcomeUnknownError(f"Twilio call interrupted: {type(exc).__name__}") from None
        except TwilioException as exc:
            raise OutcomeUnknownError(f"unreadable Twilio response: {type(exc).__name__}") from None
        log.debug(
            "sms sent",
            extra={"notification_id": notice.notification_id, "to": mask_phone(notice.address)},
        )
        return str(message.sid)

    async def find_sent(self, notice: Notice) -> str | None:
        """Look the notice up in Twilio's message log by recipient and send date, matching the
        ref code the body carries. A queued message has no date_sent yet, so the recipient's
        most recent messages are checked too."""
        if not notice.address:
            return None
        marker = notice.body[notice.body.rfind(" #") :]
        started = datetime.fromtimestamp(notice.attempt_started_s or 0, UTC) - timedelta(days=1)
        try:
            api = self._api()
            for query in (
                {"to": notice.address, "date_sent_after": started, "limit": 200, "page_size": 200},
                {"to": notice.address, "limit": 50, "page_size": 50},
            ):
                found = await asyncio.wait_for(
                    api.messages.list_async(**query), self._config.timeout_s
                )
                for message in found:
                    if message.body and str(message.body).endswith(marker):
                        return str(message.sid)
        except TwilioRestException as exc:
            raise TransientSendError(f"cannot read Twilio's log: HTTP {exc.status}") from None
        except (TimeoutError, aiohttp.ClientError, TwilioException) as exc:
            raise TransientSendError(f"cannot read Twilio's log: {type(exc).__name__}") from None
        return None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
            self._client = None


def _translate(exc: TwilioRestException) -> Exception:
    code = exc.code
    if code in PERMANENT_CODES:
        return PermanentSendError(str(code), f"Twilio refused the message (error {code})")
    if exc.status == 429 or exc.status >= 500:
        return TransientSendError(f"Twilio HTTP {exc.status}" + (f" error {code}" if code else ""))
    return PermanentSendError(
        str(code) if code else f"http_{exc.status}", f"Twilio HTTP {exc.status} (error {code})"
    )
