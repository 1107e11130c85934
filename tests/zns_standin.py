"""A local stand-in for Zalo's ZNS API and OA token endpoint on loopback (tests, benchmarks).

``POST /message/template`` (header ``access_token``, JSON phone / template_id / template_data /
tracking_id) answers HTTP 200 with ``{"error": 0, "data": {"msg_id": ...}}`` or a documented
negative code: -118 (no Zalo account: numbers in ``not_on_zalo``), -144 (daily quota:
``daily_quota``), -131 (template rejected: ids in ``rejected_templates``), -124 (access
token expired or unknown). A repeated tracking id is the same message (same msg_id, not sent
again), as the channel assumes. ``POST /v4/oa/access_token`` rotates the token pair (the old
refresh token stops working). Accepted messages can be confirmed by a signed
``user_received_message`` event to ``callback_url``. Faults: 429/500 or 0 (drop the
connection before taking the message); ``response_delay_s`` delays the answer *after* a
message is recorded (accepted, answer lost). Run alone: ``python tests/zns_standin.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import secrets
import time
from collections import deque
from typing import Any

from aiohttp import ClientSession, web

APP_ID = "1234567890123456789"
APP_SECRET = "standin-app-secret"
OA_ID = "9876543210"
OA_SECRET_KEY = "standin-oa-secret-key"
_PHONE = re.compile(r"^84[0-9]{8,10}$")


def event_signature(app_id: str, body: str, timestamp: str, oa_secret_key: str) -> str:
    """Zalo's event signature: ``mac=`` + sha256(app_id + body + timestamp + OA secret key)."""
    digest = hashlib.sha256((app_id + body + timestamp + oa_secret_key).encode()).hexdigest()
    return f"mac={digest}"


class ZnsStandin:
    def __init__(self, *, response_delay_s: float = 0.0, token_lifetime_s: int = 90000) -> None:
        self.response_delay_s = response_delay_s
        self.token_lifetime_s = token_lifetime_s
        self.access_tokens: set[str] = {"initial-access-token"}
        self.refresh_token = "initial-refresh-token"
        self.refreshes = 0
        self.refresh_refused = 0
        self.messages: list[dict[str, Any]] = []  # each accepted message, once
        self.by_tracking: dict[str, dict[str, Any]] = {}
        self.requests = 0
        self.repeat_tracking = 0  # sends that repeated a tracking id (answered, not resent)
        self.errors: dict[int, int] = {}
        self.not_on_zalo: set[str] = set()  # ZNS phone form, 84...
        self.rejected_templates: set[str] = set()
        self.daily_quota: int | None = None
        self.faults: deque[int] = deque()
        self.callback_url: str | None = None
        self.callbacks_answered: list[int] = []
        self._callback_tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def expire_tokens(self) -> None:
        """Every access token handed out so far stops working (as at expiry)."""
        self.access_tokens.clear()

    def inject(self, status: int, times: int = 1) -> None:
        self.faults.extend([status] * times)

    def sent_to(self, phone_84: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["phone"] == phone_84]

    async def start(self, port: int = 0) -> str:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post("/message/template", self._send)
        app.router.add_post("/v4/oa/access_token", self._token)
        app.router.add_get("/_standin/messages", self._admin_messages)
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

    def _error(self, code: int, message: str) -> web.Response:
        self.errors[code] = self.errors.get(code, 0) + 1
        return web.json_response({"error": code, "message": message})

    async def _send(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.faults:
            status = self.faults.popleft()
            if status == 0:
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            return web.json_response({"error": -1, "message": "injected"}, status=status)
        if request.headers.get("access_token", "") not in self.access_tokens:
            return self._error(-124, "Access token is invalid")
        try:
            body = await request.json()
        except ValueError:
            return self._error(-121, "Body data is empty or invalid")
        if not isinstance(body, dict):
            return self._error(-121, "Body data is empty or invalid")
        phone = str(body.get("phone", ""))
        template = str(body.get("template_id", ""))
        data = body.get("template_data")
        tracking = body.get("tracking_id")
        if not _PHONE.match(phone):
            return self._error(-108, "Phone number is invalid")
        if not template.isdigit():
            return self._error(-109, "Template ID is invalid")
        if not isinstance(data, dict) or not data:
            return self._error(-111, "Template data is empty")
        if isinstance(tracking, str) and tracking in self.by_tracking:
            self.repeat_tracking += 1
            return self._ok(self.by_tracking[tracking])
        if template in self.rejected_templates:
            return self._error(-131, "Template has not been approved")
        if phone in self.not_on_zalo:
            return self._error(-118, "Zalo account does not exist or is inactive")
        if self.daily_quota is not None and len(self.messages) >= self.daily_quota:
            return self._error(-144, "OA has exceeded the daily ZNS quota")
        message = {
            "msg_id": secrets.token_hex(16),
            "phone": phone,
            "template_id": template,
            "template_data": data,
            "tracking_id": tracking,
            "sent_time": str(int(time.time() * 1000)),
        }
        # Recorded before answering: a lost answer still sent it.
        self.messages.append(message)
        if isinstance(tracking, str):
            self.by_tracking[tracking] = message
        if self.response_delay_s:
            await asyncio.sleep(self.response_delay_s)
        if self.callback_url:
            task = asyncio.create_task(self._receipt(message))
            self._callback_tasks.add(task)
            task.add_done_callback(self._callback_tasks.discard)
        return self._ok(message)

    def _ok(self, message: dict[str, Any]) -> web.Response:
        return web.json_response(
            {
                "error": 0,
                "message": "Success",
                "data": {
                    "msg_id": message["msg_id"],
                    "sent_time": message["sent_time"],
                    "quota": {"dailyQuota": "500000", "remainingQuota": "499999"},
                },
            }
        )

    async def _receipt(self, message: dict[str, Any]) -> None:
        assert self.callback_url is not None
        timestamp = str(int(time.time() * 1000))
        event = {
            "app_id": APP_ID,
            "event_name": "user_received_message",
            "sender": {"id": OA_ID},
            "recipient": {"id": "user-" + message["phone"][-4:]},
            "message": {
                "msg_id": message["msg_id"],
                "tracking_id": message["tracking_id"],
                "delivery_time": timestamp,
            },
            "timestamp": timestamp,
        }
        body = json.dumps(event)
        headers = {
            "X-ZEvent-Signature": event_signature(APP_ID, body, timestamp, OA_SECRET_KEY),
            "Content-Type": "application/json",
        }
        async with (
            ClientSession() as session,
            session.post(self.callback_url, data=body, headers=headers) as resp,
        ):
            self.callbacks_answered.append(resp.status)

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if (
            request.headers.get("secret_key") != APP_SECRET
            or form.get("app_id") != APP_ID
            or form.get("grant_type") != "refresh_token"
            or form.get("refresh_token") != self.refresh_token
        ):
            self.refresh_refused += 1
            return web.json_response(
                {"error": -14014, "error_name": "Invalid refresh token", "error_reason": ""}
            )
        self.refreshes += 1
        access = "access-" + secrets.token_hex(8)
        self.access_tokens.add(access)
        self.refresh_token = "refresh-" + secrets.token_hex(8)
        return web.json_response(
            {
                "access_token": access,
                "refresh_token": self.refresh_token,
                "expires_in": str(self.token_lifetime_s),
            }
        )

    async def _admin_messages(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": self.requests,
                "repeat_tracking": self.repeat_tracking,
                "messages": self.messages,
            }
        )

    async def _admin_config(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.response_delay_s = float(data.get("response_delay_s", self.response_delay_s))
        return web.json_response({"response_delay_s": self.response_delay_s})


class _PercentNotOnZalo(set[str]):
    """Numbers whose last two digits are below ``pct`` have no Zalo account (benchmarks:
    a fixed share of any numbering without listing the numbers)."""

    def __init__(self, pct: int) -> None:
        super().__init__()
        self.pct = pct

    def __contains__(self, phone: object) -> bool:
        return isinstance(phone, str) and phone[-2:].isdigit() and int(phone[-2:]) < self.pct


async def _main(port: int, not_on_zalo_pct: int) -> None:
    standin = ZnsStandin()
    if not_on_zalo_pct:
        standin.not_on_zalo = _PercentNotOnZalo(not_on_zalo_pct)
    await standin.start(port)
    print(f"PORT {standin.port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--not-on-zalo-pct",
        type=int,
        default=0,
        choices=range(101),
        metavar="0-100",
        help="numbers whose last two digits are below this have no Zalo account",
    )
    parsed = parser.parse_args()
    asyncio.run(_main(parsed.port, parsed.not_on_zalo_pct))
