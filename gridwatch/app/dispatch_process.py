"""``python -m gridwatch.app.dispatch_process dispatch``: one notifier dispatcher process
on the database's outbox (run several side by side).

Configuration comes from gridwatch's settings (GRIDWATCH_* environment, .env) plus a few
options; the crash test and the benchmark start it against the loopback Twilio stand-in.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from gridwatch.app.notify import store_dispatcher, store_zns_channel
from gridwatch.core.errors import GridwatchError
from gridwatch.core.settings import Settings, load_settings
from gridwatch.store import Database
from notifier import Channel, DispatcherConfig, TwilioConfig, TwilioSmsChannel, ZnsChannel


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
    channels: dict[str, Channel] = {"sms": channel}
    zns = _zns_channel(args, settings, db)
    if zns is not None:
        channels["zns"] = zns
    timeout_s = (
        args.fallback_receipt_timeout_s
        if args.fallback_receipt_timeout_s is not None
        else settings.notify_fallback_receipt_timeout_s
    )
    dispatcher = store_dispatcher(
        db,
        channels,
        config=DispatcherConfig(
            batch_size=args.batch_size,
            concurrency=args.concurrency,
            lanes=args.lanes,
            lease_s=args.lease_s,
            poll_interval_s=args.poll_interval_s,
            backoff_base_s=args.backoff_base_s,
            fallback_receipt_timeout_s=timeout_s or None,
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
        for each in channels.values():
            await each.aclose()
        await db.close()
    return 0


def _zns_channel(args: argparse.Namespace, settings: Settings, db: Database) -> ZnsChannel | None:
    """The ZNS channel when configured (options over GRIDWATCH_ZNS_* settings), else None."""
    return store_zns_channel(
        settings,
        db,
        timeout_s=args.timeout_s,
        app_id=args.zns_app_id,
        app_secret=args.zns_app_secret,
        oa_id=args.zns_oa_id,
        access_token=args.zns_access_token,
        refresh_token=args.zns_refresh_token,
        templates=args.zns_templates,
        base_url=args.zns_base_url,
        oauth_url=args.zns_oauth_url,
        messages_per_s=args.zns_messages_per_s,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gridwatch.app.dispatch_process")
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
    z = d.add_argument_group("ZNS (default: GRIDWATCH_ZNS_* settings; off without an app id)")
    z.add_argument("--zns-app-id")
    z.add_argument("--zns-app-secret")
    z.add_argument("--zns-oa-id")
    z.add_argument("--zns-access-token", help="first access token (else refreshed at once)")
    z.add_argument("--zns-refresh-token")
    z.add_argument("--zns-templates", help="kind.language=template_id,...")
    z.add_argument("--zns-base-url")
    z.add_argument("--zns-oauth-url")
    z.add_argument("--zns-messages-per-s", type=float)
    d.add_argument(
        "--fallback-receipt-timeout-s",
        type=float,
        help="seconds without a ZNS receipt before the SMS fallback (0: never on silence)",
    )
    args = parser.parse_args(argv)
    if args.from_number is None and args.messaging_service_sid is None:
        parser.error("one of --from-number or --messaging-service-sid is required")
    for name in ("fallback_receipt_timeout_s", "zns_messages_per_s"):
        value = getattr(args, name)
        if value is not None and not (0 <= value <= 7 * 86400):
            parser.error(f"--{name.replace('_', '-')} must be within [0, 604800]")
    try:
        return asyncio.run(_dispatch(args))
    except GridwatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
