"""A local stand-in for Twilio's Messages API (2010-04-01) on loopback, for tests and benchmarks.

Implements POST and GET /2010-04-01/Accounts/{sid}/Messages.json with HTTP basic auth, the
To / From / DateSent, DateSent<, DateSent> filters and paging, in Twilio's JSON shapes, so
the real ``twilio`` client talks to it unchanged. It can inject errors (429, 500, 21211...),
delay responses *after* recording a message (to simulate "accepted, response lost"), and
counts what it sent. Run alone: ``python tests/twilio_standin.py --port 0`` prints
``PORT <n>``; ``GET /_standin/messages`` and ``POST /_standin/faults`` drive it from outside.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import secrets
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "standin-auth-token"
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


@dataclass
class Fault:
    status: int
    code: int | None = None
    message: str = "injected fault"


class TwilioStandin:
    def __init__(
        self,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        *,
        response_delay_s: float = 0.0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.response_delay_s = response_delay_s
        self.messages: list[dict[str, Any]] = []
        self.post_attempts = 0
        self.list_calls = 0
        self.faults: deque[Fault] = deque()
        self._runner: web.AppRunner | None = None
        self.port = 0
        # Status callbacks: like Twilio, POST signed "sent" then "delivered" (or "undelivered"
        # with 30003 for numbers in ``undeliverable``) to each message's StatusCallback URL.
        # ``callback_base_url`` replaces scheme://host of that URL (the service behind a proxy);
        # the signature still covers the public URL, as Twilio's does.
        self.callback_base_url: str | None = None
        self.undeliverable: set[str] = set()
        self.callbacks_answered: list[int] = []
        self._callback_tasks: set[asyncio.Task[None]] = set()

    # --- control ----------------------------------------------------------------------------
    def inject(self, status: int, code: int | None = None, times: int = 1) -> None:
        """Fail the next ``times`` POSTs with ``status`` (and Twilio ``code``); 0 drops the
        connection without taking the message."""
        for _ in range(times):
            self.faults.append(Fault(status, code))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bodies_to(self, to: str) -> list[str]:
        return [m["body"] for m in self.messages if m["to"] == to]

    async def start(self, port: int = 0) -> str:
        app = web.Application(client_max_size=64 * 1024)
        path = "/2010-04-01/Accounts/{sid}/Messages.json"
        app.router.add_post(path, self._create)
        app.router.add_get(path, self._list)
        app.router.add_get("/_standin/messages", self._admin_messages)
        app.router.add_post("/_standin/faults", self._admin_faults)
        app.router.add_post("/_standin/config", self._admin_config)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self.base_url

    async def stop(self) -> None:
        for task in list(self._callback_tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- Twilio API ---------------------------------------------------------------------------
    def _error(self, status: int, code: int | None, message: str) -> web.Response:
        return web.json_response(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status=status,
        )

    def _authorised(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        expected = (
            "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        )
        return (
            secrets.compare_digest(header, expected)
            and request.match_info["sid"] == self.account_sid
        )

    async def _create(self, request: web.Request) -> web.Response:
        self.post_attempts += 1
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        form = await request.post()
        if self.faults:
            fault = self.faults.popleft()
            if fault.status == 0:
                # Connection dropped before the message was taken: nothing sent, outcome unknown.
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            return self._error(fault.status, fault.code, fault.message)
        to = str(form.get("To", ""))
        body = str(form.get("Body", ""))
        if not _E164.match(to):
            return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return self._error(
                400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required"
            )
        if not body:
            return self._error(400, 21602, "Message body is required.")
        now = datetime.now(UTC)
        sid = "SM" + secrets.token_hex(16)
        message: dict[str, Any] = {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": to,
            "from": str(form.get("From", "")) or None,
            "messaging_service_sid": str(form.get("MessagingServiceSid", "")) or None,
            "body": body,
            "status": "queued",
            "direction": "outbound-api",
            "num_segments": "1",
            "num_media": "0",
            "date_created": format_datetime(now),
            "date_updated": format_datetime(now),
            "date_sent": format_datetime(now),
            "price": None,
            "price_unit": "USD",
            "error_code": None,
            "error_message": None,
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            "subresource_uris": {},
            "_status_callback": str(form.get("StatusCallback", "")) or None,
            "_created": now,
        }
        # Recorded before answering: a delayed (or never delivered) response still sent it.
        self.messages.append(message)
        if self.response_delay_s:
            await asyncio.sleep(self.response_delay_s)
        if self.callback_base_url and message["_status_callback"]:
            task = asyncio.create_task(self._callbacks(message))
            self._callback_tasks.add(task)
            task.add_done_callback(self._callback_tasks.discard)
        return web.json_response(_public(message), status=201)

    async def _callbacks(self, message: dict[str, Any]) -> None:
        from urllib.parse import urlsplit

        from aiohttp import ClientSession
        from twilio.request_validator import RequestValidator

        public = str(message["_status_callback"])
        parts = urlsplit(public)
        assert self.callback_base_url is not None
        target = (
            self.callback_base_url.rstrip("/")
            + parts.path
            + (f"?{parts.query}" if parts.query else "")
        )
        final = "undelivered" if message["to"] in self.undeliverable else "delivered"
        validator = RequestValidator(self.auth_token)
        async with ClientSession() as session:
            for status in ("sent", final):
                params = {
                    "MessageSid": message["sid"],
                    "MessageStatus": status,
                    "AccountSid": self.account_sid,
                    "To": message["to"],
                }
                if status == "undelivered":
                    params["ErrorCode"] = "30003"
                headers = {"X-Twilio-Signature": validator.compute_signature(public, params)}
                async with session.post(target, data=params, headers=headers) as resp:
                    self.callbacks_answered.append(resp.status)

    async def _list(self, request: web.Request) -> web.Response:
        self.list_calls += 1
        if not self._authorised(request):
            return self._error(401, 20003, "Authenticate")
        q = request.query
        found = list(reversed(self.messages))  # newest first, as Twilio lists
        if "To" in q:
            found = [m for m in found if m["to"] == q["To"]]
        if "From" in q:
            found = [m for m in found if m["from"] == q["From"]]
        for key, test in (("DateSent", "eq"), ("DateSent<", "le"), ("DateSent>", "ge")):
            if key in q:
                bound = _parse_date(q[key])
                if bound is None:
                    return self._error(400, 20001, f"invalid {key}")
                found = [m for m in found if _date_matches(m["_created"], bound, test, q[key])]
        page_size = max(1, min(1000, int(q.get("PageSize", "50"))))
        page = max(0, int(q.get("Page", "0")))
        chunk = found[page * page_size : (page + 1) * page_size]
        base = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        keep = "&".join(
            f"{k}={v}" for k, v in q.items() if k not in ("Page", "PageSize", "PageToken")
        )
        nxt = (
            f"{base}?{keep}&PageSize={page_size}&Page={page + 1}"
            if (page + 1) * page_size < len(found)
            else None
        )
        return web.json_response(
            {
                "messages": [_public(m) for m in chunk],
                "page": page,
                "page_size": page_size,
                "start": page * page_size,
                "end": page * page_size + len(chunk),
                "uri": f"{base}?{request.query_string}",
                "first_page_uri": f"{base}?PageSize={page_size}&Page=0",
                "next_page_uri": nxt,
                "previous_page_uri": None,
            }
        )

    # --- admin (when run as a separate process) -----------------------------------------------
    async def _admin_messages(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "post_attempts": self.post_attempts,
                "list_calls": self.list_calls,
                "messages": [
                    {"sid": m["sid"], "to": m["to"], "body": m["body"]} for m in self.messages
                ],
            }
        )

    async def _admin_faults(self, request: web.Request) -> web.Response:
        for item in await request.json():
            self.inject(int(item["status"]), item.get("code"), int(item.get("times", 1)))
        return web.json_response({"queued": len(self.faults)})

    async def _admin_config(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.response_delay_s = float(data.get("response_delay_s", self.response_delay_s))
        return web.json_response({"response_delay_s": self.response_delay_s})


def _public(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if not k.startswith("_")}


def _parse_date(text: str) -> datetime | None:
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _date_matches(created: datetime, bound: datetime, test: str, raw: str) -> bool:
    # Twilio compares dates (YYYY-MM-DD); a full timestamp compares as its date too.
    day, bound_day = created.date(), bound.date()
    if test == "eq":
        return day == bound_day
    if test == "le":
        return day <= bound_day
    return day >= bound_day


async def _main(port: int, delay_s: float) -> None:
    standin = TwilioStandin(response_delay_s=delay_s)
    await standin.start(port)
    print(f"PORT {standin.port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-s", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(_main(args.port, args.delay_s))
