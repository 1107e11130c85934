"""The ``gridwatch`` command. Each sub-command is a thin shell over a library function;
heavy imports happen inside the command so ``gridwatch --help`` stays instant."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gridwatch.app.cli_args import (
    MAX_HISTORY_YEARS,
    GridwatchParser,
    epoch_s,
    existing_file,
    existing_path,
    history_source,
    mark_leaves,
    network_name,
    output_path,
    positive_float,
    scenario_arg,
    scenario_names,
    seed,
    shown,
    token_name,
    version_text,
    years,
)
from gridwatch.core.errors import GridwatchError, TopologyError
from gridwatch.core.logging import configure_logging
from gridwatch.core.settings import Settings, load_settings

if TYPE_CHECKING:
    from gridwatch.store import Database

# A command returns its exit code, directly or from a coroutine run on a fresh event loop.
Handler = Callable[[argparse.Namespace, Settings], "int | Coroutine[Any, Any, int]"]
TOPOLOGY_PROBLEMS_SHOWN = 100

_shown = shown


async def _open_db(settings: Settings, *, create_schema: bool = False) -> Database:
    """The pool, once ``_check_database`` has made first contact (main does, for commands
    in ``_uses_database``)."""
    from gridwatch.store import Database

    url = settings.database_url.get_secret_value()
    return await Database.open(url, settings.database_schema, create_schema=create_schema)


async def _check_database(settings: Settings) -> None:
    """One plain connection attempt: a missing database or a malformed URL fails at once
    with its cause, instead of after the pool's 10 s of retries."""
    from gridwatch.app.cli_db import check_database

    await check_database(settings.database_url.get_secret_value())


async def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from gridwatch.store import migrate, telemetry_storage

    db = await _open_db(settings, create_schema=True)
    try:
        applied = await migrate(db, storage=args.storage)
        mode = await telemetry_storage(db)
    finally:
        await db.close()
    print(
        f"schema {settings.database_schema}: "
        + (f"applied {', '.join(applied)}" if applied else "up to date")
        + f"; telemetry storage: {mode}"
    )
    return 0


async def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from gridwatch.app.service import run_service
    from gridwatch.core.clock import ReplayClock

    clock = None
    if args.replay_from is not None:
        clock = ReplayClock(args.replay_from, args.replay_speed, deferred=True)
        print(
            f"replay mode: event time starts at {args.replay_from:.0f} and runs at"
            f" {args.replay_speed:g}x from the first message received",
            flush=True,
        )
    await run_service(settings, clock)
    return 0


async def _cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    from gridwatch.api import create_token

    db = await _open_db(settings)
    try:
        token = await create_token(db, args.role, args.name)
    finally:
        await db.close()
    print(token)  # shown once; only its hash is stored
    return 0


def _token_ref(text: str) -> str:
    """``token revoke``'s NAME_OR_ID: a token name as ``token create`` accepts it (1 to 200
    characters, surrounding blanks dropped) or a token id."""
    ref = text.strip()
    if not 1 <= len(ref) <= 200:
        raise argparse.ArgumentTypeError(
            f"a token name (1 to 200 characters) or id is needed, got {_shown(text)}"
        )
    return ref


def _printable(text: str) -> str:
    # Names are free text: control characters would rewrite the operator's terminal.
    return text if text.isprintable() else repr(text)


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    from gridwatch.store.auth import list_api_tokens

    db = await _open_db(settings)
    try:
        tokens = await list_api_tokens(db)
    finally:
        await db.close()
    if args.live:
        tokens = [t for t in tokens if not t.revoked]
    # Never the secret (not stored) nor its digest: ids, names, roles and dates only.
    rows = [("ID", "NAME", "ROLE", "CREATED", "LAST USED", "REVOKED")] + [
        (
            str(t.token_id),
            _printable(t.name),
            t.role,
            _when(t.created_at),
            _when(t.last_used_at),
            _when(t.revoked_at),
        )
        for t in tokens
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


async def _cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from gridwatch.api import ApiSettings
    from gridwatch.store.auth import api_tokens_matching, revoke_api_token

    ref: str = args.token
    shown = _shown(ref)
    db = await _open_db(settings)
    try:
        found = await api_tokens_matching(db, ref)
        as_id = int(ref) if ref.isascii() and ref.isdigit() else None
        by_id = [t for t in found if t.token_id == as_id]
        by_name = [t for t in found if t.name == ref]
        if args.by == "id":
            candidates = by_id
        elif args.by == "name":
            candidates = by_name
        elif by_id and by_name and {t.token_id for t in by_name} != {by_id[0].token_id}:
            raise GridwatchError(
                f"{shown} is the id of token {by_id[0].token_id} and the name of token(s)"
                f" {', '.join(str(t.token_id) for t in by_name)}: add --by id or --by name"
            )
        else:
            candidates = by_id or by_name
        if not candidates:
            what = {"id": "with id", "name": "named"}.get(args.by, "named or with id")
            raise GridwatchError(f"no API token {what} {shown} (see: gridwatch token list)")
        live = [t for t in candidates if not t.revoked]
        if len(live) > 1:
            raise GridwatchError(
                f"{len(live)} live tokens are named {shown} (ids"
                f" {', '.join(str(t.token_id) for t in live)}): revoke one by its id"
            )
        if not live or not await revoke_api_token(db, live[0].token_id):
            done = live[0] if live else candidates[-1]
            print(f"token {done.token_id} ({_printable(done.name)}) was already revoked")
            return 0
    finally:
        await db.close()
    token = live[0]
    try:
        within = f"{ApiSettings().token_cache_s:g} s"
    except ValueError:  # the API's own settings are broken: it reports that itself
        within = "its cache time"
    print(
        f"revoked token {token.token_id} ({_printable(token.name)}, {token.role}); a running"
        f" API refuses it within GRIDWATCH_TOKEN_CACHE_S ({within})"
    )
    return 0


async def _cmd_topology_import(args: argparse.Namespace, settings: Settings) -> int:
    from gridwatch.topology import ImportSummary, read_topology_file, save_topology

    # The file first (CPU work, off the loop): its problems come without a database.
    topology = await asyncio.to_thread(read_topology_file, args.file)
    await _check_database(settings)
    db = await _open_db(settings)
    try:
        await save_topology(db, topology)
    finally:
        await db.close()
    print(
        ImportSummary(
            devices=len(topology.devices),
            ties=int((topology.devices.alt_parent >= 0).sum()),
            meters=len(topology.meters),
            customers=len(topology.customers),
            warnings=list(topology.warnings),
        )
    )
    return 0


async def _cmd_retention(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from gridwatch.store import apply_retention

    db = await _open_db(settings)
    try:
        dropped = await apply_retention(db, settings.telemetry_retention_days, time.time())
    finally:
        await db.close()
    print(
        f"dropped {dropped} telemetry partitions older than {settings.telemetry_retention_days} d"
    )
    return 0


async def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from gridwatch.app.demo import run_demo

    return await run_demo(
        settings, duration_s=args.duration, speed=args.speed, seed=args.seed, scenario=args.scenario
    )


def _cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from simulators.cli_commands import cmd_simulate

    cmd_simulate(
        args.scenario,
        mqtt_url=None if args.no_publish else settings.mqtt_url.get_secret_value(),
        prefix=settings.mqtt_prefix,
        speed=args.speed,
        seed=args.seed,
        record=args.record,
        truth=args.truth,
        network=args.network,
        topology_out=args.topology_out,
    )
    return 0


def _cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from simulators.cli_commands import cmd_replay, cmd_replay_db

    mqtt_url = settings.mqtt_url.get_secret_value()
    if args.recording is not None:
        cmd_replay(args.recording, mqtt_url=mqtt_url, prefix=settings.mqtt_prefix, speed=args.speed)
    else:
        cmd_replay_db(
            settings.database_url.get_secret_value(),
            settings.database_schema,
            from_s=args.from_s,
            to_s=args.to_s,
            mqtt_url=mqtt_url,
            prefix=settings.mqtt_prefix,
            speed=args.speed,
        )
    return 0


def _cmd_score(args: argparse.Namespace, settings: Settings) -> int:
    from simulators.cli_commands import cmd_score

    cmd_score(
        args.truth,
        recorded_json=args.recorded_json,
        database_url=None if args.recorded_json else settings.database_url.get_secret_value(),
        schema=settings.database_schema,
        recording=args.recording,
        json_out=args.json_out,
    )
    return 0


def _cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    from simulators.cli_commands import cmd_history

    cmd_history(args.output, scenario=args.scenario, years=args.years, seed=args.seed)
    return 0


def _outage_id(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 18 or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"{_shown(text, 30)} is not an outage id")
    return int(text)


def _window_days(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text[:6]) <= 3660:
        raise argparse.ArgumentTypeError(f"{_shown(text, 30)}: give 1 to 3660 days")
    return int(text)


def _price_vnd(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1_000_000:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{_shown(text, 30)}: a price in VND, 0 to 1000000")
    return value


async def _cmd_notify_costs(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from gridwatch.store.notification_costs import channel_days, outage_reach
    from notifier import NotifyPolicy, Prices, cost_report, format_report

    prices = Prices(
        sms_segment_vnd=args.price_sms_segment_vnd
        if args.price_sms_segment_vnd is not None
        else settings.notify_price_sms_segment_vnd,
        zns_vnd=args.price_zns_vnd
        if args.price_zns_vnd is not None
        else settings.notify_price_zns_vnd,
    )
    to_s = datetime.now(UTC).timestamp()
    from_s = to_s - args.days * 86400
    db = await _open_db(settings)
    try:
        async with db.connection() as conn:
            days = await channel_days(
                conn,
                outage_id=args.outage,
                from_s=from_s,
                to_s=to_s,
                timezone=NotifyPolicy().timezone,
            )
            reach = await outage_reach(conn, outage_id=args.outage, from_s=from_s, to_s=to_s)
    finally:
        await db.close()
    report = cost_report(days, reach, prices)
    if args.format == "json":
        print(json.dumps(report, ensure_ascii=False, indent=1))
    elif not days:
        print(
            f"no notices in the last {args.days} days"
            + (f" for outage {args.outage}" if args.outage else "")
        )
    else:
        print(format_report(report))
    return 0


def _cmd_vapid_keys(args: argparse.Namespace, settings: Settings) -> int:
    from gridwatch.core.errors import ConfigError
    from notifier import NotifierError, generate_vapid_keys

    try:
        keys = generate_vapid_keys(args.path)
    except NotifierError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot write a VAPID key at {_shown(str(args.path), 200)}: {exc}"
        ) from None
    print(f"private key: {args.path} (set GRIDWATCH_VAPID_PRIVATE_KEY_PATH to it)", file=sys.stderr)
    print(keys.public_key_b64url)
    return 0


async def _cmd_etr_fit(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from gridwatch.etr import EtrTaskOptions, fit_history_file

    db = await _open_db(settings)
    try:
        # The service's own ETR settings (crews), so the interval backtest queues alike.
        fit = await fit_history_file(
            db,
            args.history,
            as_of_s=time.time(),
            activate=not args.no_activate,
            config=EtrTaskOptions.from_settings(settings).etr,
            from_grid=args.from_grid,
        )
    finally:
        await db.close()
    columns = fit.columns
    for reject in columns.rejects[:10]:
        print(f"skipped {reject}", file=sys.stderr)
    if len(columns.rejects) > 10:
        print(f"... {len(columns.rejects) - 10} more rows skipped", file=sys.stderr)
    state = "saved" if args.no_activate else "saved and active"
    info = fit.loaded.model.info
    print(
        f"ETR model {fit.loaded.version} {state}: fitted on {len(columns):,} outages"
        f" ({len(columns.rejects):,} rows skipped, {fit.planned_skipped:,} planned left out);"
        f" storm thresholds {info.get('storm_thresholds')} from the history's concurrency"
        + (
            f" (the file's storm_level on {fit.storm_levels_ignored:,} rows not used)"
            if fit.storm_levels_ignored
            else ""
        )
        + f"; provenance {info['provenance']['source']}"
        + (
            f"; kinds it lacks, from the prior: {', '.join(info['kinds_from_root'])}"
            if info.get("kinds_from_root")
            else ""
        )
    )
    return 0


def _add_replay_commands(sub: Any, scenarios: str) -> None:
    p = sub.add_parser("simulate", help="run a scenario: publish its telemetry, write ground truth")
    p.add_argument(
        "--scenario",
        required=True,
        type=scenario_arg,
        help=f"{scenarios}, or a scenario JSON file (docs/simulators.md)",
    )
    p.add_argument(
        "--speed",
        type=positive_float,
        default=60.0,
        help="event seconds per wall second (default %(default)g)",
    )
    p.add_argument(
        "--seed", type=seed, default=None, help="random seed (default: the scenario's own)"
    )
    p.add_argument("--record", type=output_path, default=None, help="also record to FILE.jsonl.gz")
    p.add_argument(
        "--truth",
        type=output_path,
        default=Path("truth.json"),
        help="where to write the ground truth (default %(default)s)",
    )
    p.add_argument("--no-publish", action="store_true", help="record / write truth only")
    p.add_argument(
        "--topology-out",
        type=output_path,
        default=None,
        help="also write the grid as topology JSON",
    )
    p.add_argument(
        "--network",
        type=network_name,
        default=None,
        help="run on a published network (pandapower / SimBench name, e.g. mv_oberrhein)"
        " instead of the scenario's synthetic grid",
    )
    p.set_defaults(handler=_cmd_simulate)

    p = sub.add_parser("replay", help="replay a recording, or telemetry stored in the database")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--recording", type=existing_file, help="a recording (gridwatch simulate --record)"
    )
    source.add_argument(
        "--from",
        dest="from_s",
        type=epoch_s,
        metavar="TIME",
        help="database replay start (RFC 3339 or epoch seconds)",
    )
    p.add_argument(
        "--to", dest="to_s", type=epoch_s, metavar="TIME", help="database replay end (with --from)"
    )
    p.add_argument(
        "--speed",
        type=positive_float,
        default=60.0,
        help="event seconds per wall second (default %(default)g)",
    )
    p.set_defaults(handler=_cmd_replay)

    p = sub.add_parser("score", help="score recorded outages and ETRs against ground truth")
    p.add_argument(
        "--truth",
        type=existing_file,
        default="truth.json",
        help="ground truth from gridwatch simulate (default %(default)s)",
    )
    p.add_argument(
        "--recorded-json",
        type=existing_file,
        default=None,
        help="outages as JSON instead of the database's",
    )
    p.add_argument(
        "--recording",
        type=existing_file,
        default=None,
        help="the run's recording, to score telemetry-derived figures too",
    )
    p.add_argument("--json-out", type=output_path, default=None, help="also write JSON here")
    p.set_defaults(handler=_cmd_score)

    p = sub.add_parser("history", help="generate years of past outages (CSV) for ETR fitting")
    p.add_argument("output", type=output_path, help="the CSV file to write")
    p.add_argument(
        "--scenario",
        type=scenario_arg,
        default="storm",
        help=f"the grid and weather to draw from: {scenarios} (default %(default)s)",
    )
    p.add_argument(
        "--years",
        type=years,
        default=3.0,
        help=f"years of history, at most {MAX_HISTORY_YEARS:g} (default %(default)g)",
    )
    p.add_argument("--seed", type=seed, default=1, help="random seed (default %(default)s)")
    p.set_defaults(handler=_cmd_history)


def build_parser() -> argparse.ArgumentParser:
    parser = GridwatchParser(
        prog="gridwatch",
        description="Outage detection, restoration estimates and customer notification.",
        epilog="Settings come from GRIDWATCH_* environment variables or .env (see README.md).",
    )
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument(
        "--log-format",
        choices=["auto", "json", "text"],
        default=None,
        help="log lines as JSON or text; auto: text on a terminal (default: GRIDWATCH_LOG_FORMAT)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    scenarios = ", ".join(scenario_names())

    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    p.add_argument(
        "--storage",
        choices=["auto", "plain", "timescaledb"],
        default="auto",
        help="telemetry storage; auto uses TimescaleDB when the extension is available",
    )
    p.set_defaults(handler=_cmd_migrate)

    p = sub.add_parser("serve", help="run the service: MQTT ingest and the API")
    p.add_argument(
        "--replay-from",
        type=epoch_s,
        default=None,
        metavar="TIME",
        help="serve a replay: event time starts at TIME (RFC 3339 or epoch seconds) when the"
        " first message arrives (gridwatch simulate prints the scenario's start)",
    )
    p.add_argument(
        "--replay-speed",
        type=positive_float,
        default=60.0,
        help="with --replay-from: event seconds per wall second (default %(default)g)",
    )
    p.set_defaults(handler=_cmd_serve)

    p = sub.add_parser("etr", help="restoration-time models")
    etr = p.add_subparsers(dest="etr_command", required=True, metavar="ACTION")
    t = etr.add_parser("fit", help="fit the ETR model on a history CSV and make it active")
    t.add_argument("history", type=existing_file, help="CSV (docs/etr-model.md lists columns)")
    t.add_argument("--no-activate", action="store_true", help="store it without using it")
    t.add_argument(
        "--from-grid",
        type=history_source,
        metavar="NAME",
        help="the history is another grid's (a neighbour's, a vendor's): its intervals"
        " widen until this grid's own outages come in",
    )
    t.set_defaults(handler=_cmd_etr_fit)

    p = sub.add_parser("token", help="API tokens")
    tok = p.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    t = tok.add_parser("create", help="create an API token (printed once)")
    t.add_argument(
        "--role",
        choices=["viewer", "operator", "admin"],
        required=True,
        help="what it may do (docs/api.md)",
    )
    t.add_argument(
        "--name", type=token_name, required=True, help="who or what holds it (1 to 200 characters)"
    )
    t.set_defaults(handler=_cmd_token_create)
    t = tok.add_parser("list", help="list API tokens (never their secrets)")
    t.add_argument("--live", action="store_true", help="leave out revoked tokens")
    t.set_defaults(handler=_cmd_token_list)
    t = tok.add_parser(
        "revoke", help="revoke an API token (the API refuses it within GRIDWATCH_TOKEN_CACHE_S)"
    )
    t.add_argument("token", type=_token_ref, metavar="NAME_OR_ID", help="its name or id")
    t.add_argument(
        "--by", choices=["id", "name"], default=None, help="when NAME_OR_ID could be either"
    )
    t.set_defaults(handler=_cmd_token_revoke)

    p = sub.add_parser("topology", help="network topology")
    topo = p.add_subparsers(dest="topology_command", required=True, metavar="ACTION")
    t = topo.add_parser("import", help="validate a topology file (JSON or CSV dir) and load it")
    t.add_argument(
        "file",
        type=existing_path,
        help="a topology JSON file, or a directory of devices.csv, meters.csv, customers.csv"
        " (docs/topology-format.md); checked in full before the database is touched",
    )
    t.set_defaults(handler=_cmd_topology_import)

    p = sub.add_parser("retention", help="drop telemetry older than the retention window")
    p.set_defaults(handler=_cmd_retention)

    p = sub.add_parser(
        "demo",
        help="simulated feeder -> MQTT -> gridwatch, with a live view",
        description="A simulated feeder publishes over MQTT into gridwatch and PostgreSQL"
        " (embedded ones unless GRIDWATCH_MQTT_URL / GRIDWATCH_DATABASE_URL are set). Prints"
        " the API address and an operator token; without a terminal it ends when the"
        " scenario's story is told.",
    )
    p.add_argument(
        "--duration",
        type=positive_float,
        default=None,
        help="stop after N wall seconds (default: at Ctrl-C, or when the story ends with no"
        " terminal)",
    )
    p.add_argument(
        "--speed",
        type=positive_float,
        default=60.0,
        help="event seconds per wall second (default %(default)g)",
    )
    p.add_argument("--seed", type=seed, default=7, help="random seed (default %(default)s)")
    p.add_argument(
        "--scenario",
        type=scenario_arg,
        default="breaker_trip",
        help=f"{scenarios}, or a scenario JSON file (default %(default)s)",
    )
    p.set_defaults(handler=_cmd_demo)
    _add_replay_commands(sub, scenarios)

    p = sub.add_parser("notify", help="customer notifications")
    notify = p.add_subparsers(dest="notify_command", required=True, metavar="ACTION")
    n = notify.add_parser(
        "vapid-keys", help="create the Web Push (VAPID) key pair; prints the public key"
    )
    n.add_argument("path", type=output_path, help="where to write the private key (PEM, mode 0600)")
    n.set_defaults(handler=_cmd_vapid_keys)
    n = notify.add_parser(
        "costs",
        help="notices per channel, SMS segments and estimated cost, per outage and per day",
    )
    n.add_argument("--outage", type=_outage_id, help="one outage (default: every outage)")
    n.add_argument(
        "--days", type=_window_days, default=30, help="the last N days (default %(default)s)"
    )
    n.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    n.add_argument(
        "--price-sms-segment-vnd",
        type=_price_vnd,
        help="VND per SMS segment (default GRIDWATCH_NOTIFY_PRICE_SMS_SEGMENT_VND)",
    )
    n.add_argument(
        "--price-zns-vnd",
        type=_price_vnd,
        help="VND per ZNS (default GRIDWATCH_NOTIFY_PRICE_ZNS_VND)",
    )
    n.set_defaults(handler=_cmd_notify_costs)
    mark_leaves(parser)
    return parser


def _uses_database(args: argparse.Namespace) -> bool:
    """Commands whose first contact with the database comes before anything else (topology
    import reads its file first and checks the database itself)."""
    handler = args.handler
    if handler is _cmd_replay:
        return args.recording is None
    if handler is _cmd_score:
        return args.recorded_json is None
    return handler in (
        _cmd_migrate,
        _cmd_serve,
        _cmd_token_create,
        _cmd_token_list,
        _cmd_token_revoke,
        _cmd_retention,
        _cmd_etr_fit,
        _cmd_notify_costs,
    )


def _print_error(exc: GridwatchError) -> None:
    if isinstance(exc, TopologyError) and len(exc.problems) > 1:
        # One problem a line: a file with many reads as a list, not one long line.
        problems = exc.problems
        print(f"gridwatch: error: invalid topology ({len(problems)} problems):", file=sys.stderr)
        for problem in problems[:TOPOLOGY_PROBLEMS_SHOWN]:
            print(f"  {_printable(problem)}", file=sys.stderr)
        if len(problems) > TOPOLOGY_PROBLEMS_SHOWN:
            print(f"  ... and {len(problems) - TOPOLOGY_PROBLEMS_SHOWN} more", file=sys.stderr)
        return
    print(f"gridwatch: error: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "from_s", None) is not None:
        if getattr(args, "to_s", None) is None:
            args.parser_.error("--from needs --to")
        if args.to_s <= args.from_s:
            args.parser_.error("--to must be after --from")
    elif getattr(args, "to_s", None) is not None:
        args.parser_.error("--to goes with --from")
    try:
        settings = load_settings()
        configure_logging(args.log_format or settings.log_format, settings.log_level)
        if _uses_database(args):
            # Before the command's own imports (numba, the API: seconds), so a database
            # that is not there is reported at once.
            asyncio.run(_check_database(settings))
        handler: Handler = args.handler
        result = handler(args, settings)
        return asyncio.run(result) if not isinstance(result, int) else result
    except GridwatchError as exc:
        _print_error(exc)
        return 1
    except OSError as exc:
        # A file or socket the checks above could not foresee (full disk, permissions).
        print(f"gridwatch: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
