"""The demo's embedded MQTT broker, started for real and used by aiomqtt / paho clients.

Findings these tests pin down (see docs/deployment.md):
- amqtt 0.12 speaks MQTT 3.1.1 only; an MQTT 5 CONNECT is refused.
- amqtt queues QoS 1 messages for an offline persistent session (clean_session=False) and
  delivers them on reconnect, but does NOT redeliver a message that was sent and never
  acknowledged before the consumer dropped: ack-after-write gives no protection there.
  Mosquitto does redeliver, so the demo is at-least-once only on the mosquitto fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import threading
import time
import uuid

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gridwatch import BrokerUnavailable
from gridwatch.app.embedded import EmbeddedBroker

HAS_MOSQUITTO = any(shutil.which(b) for b in ("mosquitto", "/usr/sbin/mosquitto"))
BACKENDS = [
    "amqtt",
    pytest.param("mosquitto", marks=pytest.mark.skipif(not HAS_MOSQUITTO, reason="no mosquitto")),
]


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _collect(client: aiomqtt.Client, n: int, timeout_s: float) -> list[aiomqtt.Message]:
    got: list[aiomqtt.Message] = []

    async def take() -> None:
        async for message in client.messages:
            got.append(message)
            if len(got) >= n:
                return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(take(), timeout_s)
    return got


@pytest.mark.parametrize("backend", BACKENDS)
async def test_qos1_publish_subscribe_through_aiomqtt(backend: str) -> None:
    async with EmbeddedBroker(backend=backend) as broker:  # type: ignore[arg-type]
        assert broker.backend_used == backend
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier=_id("sub")) as sub:
            await sub.subscribe("gw/+/batch", qos=1)
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier=_id("pub")) as pub:
                for i in range(20):
                    await pub.publish(f"gw/Z{i % 2}/batch", f'{{"n": {i}}}', qos=1)
            got = await _collect(sub, 20, 10)
        assert [m.payload for m in got] == [f'{{"n": {i}}}'.encode() for i in range(20)]
        assert {m.qos for m in got} == {1}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_persistent_session_gets_messages_published_while_offline(backend: str) -> None:
    client_id = _id("ingest")
    async with EmbeddedBroker(backend=backend) as broker:  # type: ignore[arg-type]
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, identifier=client_id, clean_session=False
        ) as consumer:
            await consumer.subscribe("gw/#", qos=1)
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier=_id("pub")) as pub:
            for i in range(50):
                await pub.publish("gw/Z1/batch", str(i), qos=1)
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, identifier=client_id, clean_session=False
        ) as consumer:
            got = await _collect(consumer, 50, 10)
    assert [m.payload for m in got] == [str(i).encode() for i in range(50)]


def _consume_manual_ack(port: int, client_id: str, ack: bool, n: int) -> list[bytes]:
    """A paho consumer with manual acks; without acks it drops the socket like a kill -9."""
    got: list[bytes] = []
    done = threading.Event()
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=False,
        manual_ack=True,
    )

    def on_connect(c: paho.Client, *_: object) -> None:
        c.subscribe("gw/#", qos=1)

    def on_message(c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        got.append(bytes(message.payload))
        if ack:
            c.ack(message.mid, message.qos)
        if len(got) >= n:
            done.set()

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    done.wait(5 if n else 1)
    if ack:
        client.disconnect()
    else:
        sock = client.socket()
        if sock is not None:
            sock.close()
    time.sleep(0.2)
    client.loop_stop()
    return got


def _publish(port: int, n: int) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=_id("pub"))
    client.connect("127.0.0.1", port)
    client.loop_start()
    for i in range(n):
        client.publish("gw/Z1/batch", str(i), qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param(
            "amqtt",
            marks=pytest.mark.xfail(
                strict=True, reason="amqtt 0.12 does not redeliver unacknowledged QoS 1 messages"
            ),
        ),
        pytest.param(
            "mosquitto", marks=pytest.mark.skipif(not HAS_MOSQUITTO, reason="no mosquitto")
        ),
    ],
)
async def test_unacknowledged_messages_are_redelivered_after_a_crash(backend: str) -> None:
    client_id = _id("ingest")
    async with EmbeddedBroker(backend=backend) as broker:  # type: ignore[arg-type]
        await asyncio.to_thread(_consume_manual_ack, broker.port, client_id, True, 0)
        await asyncio.to_thread(_publish, broker.port, 5)
        first = await asyncio.to_thread(_consume_manual_ack, broker.port, client_id, False, 5)
        assert len(first) == 5  # received, never acknowledged, connection dropped
        again = await asyncio.to_thread(_consume_manual_ack, broker.port, client_id, True, 5)
    assert sorted(again) == sorted(first)


async def test_amqtt_refuses_mqtt5_clients() -> None:
    async with EmbeddedBroker(backend="amqtt") as broker:
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(
                "127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5, timeout=5
            ):
                pass
        # A 3.1.1 client still gets in afterwards.
        async with aiomqtt.Client("127.0.0.1", broker.port, timeout=5):
            pass


async def test_garbage_clients_do_not_break_the_in_process_broker() -> None:
    async with EmbeddedBroker(backend="amqtt") as broker:
        for garbage in (
            b"\x00" * 64,
            b"\x10\xff\xff\xff\xff\x7f",
            b"GET / HTTP/1.1\r\n\r\n",
            bytes(range(256)) * 400,
        ):
            _, writer = await asyncio.open_connection("127.0.0.1", broker.port)
            writer.write(garbage)
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.close()
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier=_id("sub")) as sub:
            await sub.subscribe("gw/x", qos=1)
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier=_id("pub")) as pub:
                await pub.publish("gw/x", b"still alive", qos=1)
            got = await _collect(sub, 1, 10)
        assert [m.payload for m in got] == [b"still alive"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_stop_releases_the_port(backend: str) -> None:
    broker = EmbeddedBroker(backend=backend)  # type: ignore[arg-type]
    await broker.start()
    port = broker.port
    await broker.stop()
    with pytest.raises(BrokerUnavailable):
        _ = broker.url
    with socket.socket() as probe:
        probe.settimeout(1)
        assert probe.connect_ex(("127.0.0.1", port)) != 0


async def test_a_taken_fixed_port_is_a_clear_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(BrokerUnavailable, match="no embedded MQTT broker could start"):
            async with EmbeddedBroker(port=port):
                pass
