"""``python -m notifier dispatch``: one dispatcher process (run several side by side).

Configuration comes from gridwatch's settings (GRIDWATCH_* environment, .env) plus a few
options; the crash test and the benchmark start it against the loopback Twilio stand-in.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from gridwatch._errors import GridwatchError
from gridwatch._settings import load_settings
from gridwatch.store import Database
from notifier._dispatcher import Dispatcher, DispatcherConfig
from notifier._twilio import TwilioConfig, TwilioSmsChannel


async def _dispatch(args: argparse.Namespace) -> int:
    settings = load_settings()
    db = await Database.open(
        args.database_url or settings.database_url.get_secret_value(),
        args.schema or settings.database_schema,
        max_size=args.lanes + 2,
    )
    channel = TwilioSmsChannel(
        TwilioConfig(
            account_sid=args.account_sid or settings.twilio_account_sid,
            auth_token=args.auth_token or settings.twilio_auth_token.get_secret_value(),
            from_number=args.from_number,
            messaging_service_sid=args.messaging_service_sid,
            status_callback_url=args.status_callback_url,
            base_url=args.twilio_base_url,
            messages_per_s=args.messages_per_s,
            timeout_s=args.timeout_s,
        )
    )
    dispatcher = Dispatcher(
        db,
        {"sms": channel},
        config=DispatcherConfig(
            batch_size=args.batch_size,
            concurrency=args.concurrency,
            lanes=args.lanes,
            lease_s=args.lease_s,
            poll_interval_s=args.poll_interval_s,
            backoff_base_s=args.backoff_base_s,
        ),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("READY", flush=True)
    try:
        await dispatcher.run(stop)
    finally:
        await channel.aclose()
        await db.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m notifier")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dispatch", help="run one SMS dispatcher until SIGTERM")
    d.add_argument("--database-url")
    d.add_argument("--schema")
    d.add_argument("--account-sid")
    d.add_argument("--auth-token")
    d.add_argument("--from-number")
    d.add_argument("--messaging-service-sid")
    d.add_argument("--status-callback-url")
    d.add_argument("--twilio-base-url")
    d.add_argument("--messages-per-s", type=float, default=100.0)
    d.add_argument("--timeout-s", type=float, default=10.0)
    d.add_argument("--batch-size", type=int, default=100)
    d.add_argument("--concurrency", type=int, default=64)
    d.add_argument("--lanes", type=int, default=4)
    d.add_argument("--lease-s", type=float, default=60.0)
    d.add_argument("--poll-interval-s", type=float, default=0.5)
    d.add_argument("--backoff-base-s", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.from_number is None and args.messaging_service_sid is None:
        parser.error("one of --from-number or --messaging-service-sid is required")
    try:
        return asyncio.run(_dispatch(args))
    except GridwatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
