"""Request body size limit, as a plain ASGI middleware (it must see bodies before any route)."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# A client that sends a body before reading the answer (most do) sees a reset connection,
# not the 413, if the server stops reading early. Bodies up to this size are read and
# discarded first; anything larger is cut off.
DRAIN_MAX_BYTES = 16 * 1024 * 1024


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """Reject bodies over ``max_body_bytes`` with 413: by Content-Length up front, and by
    counting while streaming (chunked bodies carry no length)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._reject(send, 400, "bad_request", "Content-Length is not a number")
                    return
                if declared > self.max_body_bytes:
                    if declared <= DRAIN_MAX_BYTES:
                        await self._drain(receive, declared)
                    await self._reject_too_large(send)
                    return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if response_started:
                raise
            await self._drain(receive, DRAIN_MAX_BYTES - received)
            await self._reject_too_large(send)

    @staticmethod
    async def _drain(receive: Receive, budget_bytes: int) -> None:
        """Read and drop the rest of the body, up to ``budget_bytes``."""
        drained = 0
        while drained <= budget_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _reject_too_large(self, send: Send) -> None:
        await self._reject(
            send,
            413,
            "payload_too_large",
            f"request body exceeds the limit of {self.max_body_bytes} bytes",
        )

    @staticmethod
    async def _reject(send: Send, status: int, error: str, detail: str) -> None:
        body = orjson.dumps({"error": error, "detail": detail, "fields": []})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
