"""The CLI's failures, as an operator meets them: the real ``gridwatch`` in a subprocess
against the real PostgreSQL (a database that does not exist, malformed URLs), topology
files checked before any database, unknown options named, ``--version``, and every
argument of every command given malformed input."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

import pytest

from gridwatch.app.cli import build_parser, main

EXAMPLE_JSON = Path(__file__).parents[2] / "examples" / "topology" / "small-city.json"
# The pool used to retry for 10 s before it said anything: well under that means no retries.
FAST_S = 8.0


@pytest.fixture(autouse=True)
def _no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs that parse further than expected must not reach a real database."""
    monkeypatch.setenv("GRIDWATCH_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")


def _missing_database_url(database_url: str) -> str:
    return urlparse(database_url)._replace(path=f"/gw_missing_{uuid.uuid4().hex[:10]}").geturl()


def _run(
    argv: list[str], database_url: str, cwd: Path | None = None
) -> tuple[int, str, str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDWATCH_")}
    env |= {"GRIDWATCH_DATABASE_URL": database_url, "GRIDWATCH_LOG_FORMAT": "text"}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "gridwatch", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------- the database's absence


@pytest.mark.parametrize(
    "argv",
    [
        ["migrate"],
        ["retention"],
        ["serve"],
        ["token", "list"],
        ["token", "create", "--role", "viewer", "--name", "ci"],
        ["token", "revoke", "ci"],
        ["topology", "import", str(EXAMPLE_JSON)],
        ["replay", "--from", "2026-11-23T08:00:00Z", "--to", "2026-11-23T09:00:00Z"],
        ["score", "--truth", str(EXAMPLE_JSON)],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_a_missing_database_fails_fast_in_one_line(database_url: str, argv: list[str]) -> None:
    missing = _missing_database_url(database_url)
    name = urlparse(missing).path.lstrip("/")
    code, out, err, took = _run(argv, missing)
    assert code == 1, (out, err)
    assert _lines(err) == [
        f"gridwatch: error: cannot connect to database {name} on"
        f" {urlparse(missing).hostname}:{urlparse(missing).port} (GRIDWATCH_DATABASE_URL):"
        f' database "{name}" does not exist'
    ]
    assert took < FAST_S, f"{took:.1f} s: the pool's retries are back"


def test_etr_fit_on_a_missing_database_fails_fast(database_url: str, tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    history.write_text("outage_id,started_at\n")
    code, _, err, took = _run(["etr", "fit", str(history)], _missing_database_url(database_url))
    assert code == 1
    assert len(_lines(err)) == 1
    assert "does not exist" in err
    assert took < FAST_S


@pytest.mark.parametrize(
    ("url", "cause"),
    [
        ("notaurl", 'missing "=" after "notaurl"'),
        ("postgresql://postgres@127.0.0.1/test?bogus=1", 'invalid URI query parameter: "bogus"'),
        ("postgresql://postgres@127.0.0.1:notaport/test", 'invalid integer value "notaport"'),
        ("postgresql://postgres@127.0.0.1:99999/test", 'invalid port number: "99999"'),
        ("postgresql://postgres@127.0.0.1/test?sslmode=bogus", 'invalid sslmode value: "bogus"'),
    ],
)
@pytest.mark.parametrize("command", [["retention"], ["migrate"], ["token", "list"]])
def test_a_malformed_database_url_fails_fast_in_one_line(
    url: str, cause: str, command: list[str]
) -> None:
    code, _, err, took = _run(command, url)
    assert code == 1
    [line] = _lines(err)
    assert line.startswith("gridwatch: error: GRIDWATCH_DATABASE_URL is malformed: ")
    assert cause in line
    assert "pool" not in line
    assert took < FAST_S


def test_a_malformed_url_never_shows_its_password() -> None:
    code, _, err, _ = _run(["retention"], "postgresql://gw:s3cret%zz@db.invalid/gridwatch")
    assert code == 1
    assert "malformed" in err
    assert "s3cret" not in err


def test_a_refused_connection_is_one_line() -> None:
    with __import__("socket").socket() as holder:  # a port that is surely closed
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
    code, _, err, took = _run(["retention"], f"postgresql://postgres@127.0.0.1:{port}/test")
    assert code == 1
    [line] = _lines(err)
    assert f"on 127.0.0.1:{port}" in line
    assert "Connection refused" in line
    assert took < FAST_S


# ---------------------------------------------------------------- topology files first


def test_topology_import_reports_the_file_before_touching_the_database(
    database_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "grid.json"
    bad.write_bytes(
        b'{"version": 1, "devices": [{"id": "A"}, 3, {"id": "A", "kind": "meteor"}],'
        b' "meters": [{"id": "m"}]}'
    )
    code, _, err, took = _run(["topology", "import", str(bad)], _missing_database_url(database_url))
    assert code == 1
    lines = _lines(err)
    assert lines[0].startswith("gridwatch: error: invalid topology (")
    assert "  devices[1]: expected an object, got a number" in lines
    assert any("unknown kind 'meteor'" in line for line in lines)
    assert all(line.startswith("  ") for line in lines[1:])  # one problem a line
    assert len(lines) == int(lines[0].split("(")[1].split()[0]) + 1
    assert "database" not in err
    assert took < FAST_S


def test_topology_version_is_said_once(database_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "grid.json"
    bad.write_bytes(b'{"version": null, "devices": [], "meters": []}')
    code, _, err, _ = _run(["topology", "import", str(bad)], _missing_database_url(database_url))
    assert code == 1
    assert _lines(err) == [
        f"gridwatch: error: invalid topology: {bad}: version must be 1, got null"
    ]


@pytest.mark.parametrize(
    ("version", "said"),
    [
        (b"null", "version must be 1, got null"),
        (b"true", "version must be 1, got true"),
        (b"2", "version must be 1, got 2"),
        (b"1.0", "version must be 1, got 1.0"),
        (b'"1"', 'version must be 1, got the string "1"'),
        (b"[1]", "version must be 1, got a list"),
        (b'"' + b"x" * 100 + b'"', 'version must be 1, got the string "' + "x" * 35 + '..."'),
    ],
)
def test_topology_version_problems_name_the_value_once(version: bytes, said: str) -> None:
    from gridwatch import TopologyError
    from gridwatch.topology import parse_topology_json

    with pytest.raises(TopologyError) as info:
        parse_topology_json(b'{"version": ' + version + b', "devices": [], "meters": []}')
    assert info.value.problems == [f"topology.json: {said}"]


def test_many_topology_problems_are_listed_with_a_bound(tmp_path: Path) -> None:
    devices = ", ".join(f'{{"id": "D{i}"}}' for i in range(150))
    bad = tmp_path / "grid.json"
    bad.write_text(f'{{"version": 1, "devices": [{devices}], "meters": []}}')
    code, _, err, _ = _run(["topology", "import", str(bad)], "notaurl")
    assert code == 1
    lines = _lines(err)
    assert len(lines) == 102  # heading, 100 problems, "... and N more"
    assert lines[-1].startswith("  ... and ")
    assert lines[-1].endswith(" more")


# ---------------------------------------------------------------- the parser


def test_version() -> None:
    code, out, _, _ = _run(["--version"], "notaurl")
    assert code == 0
    assert out.strip() == f"gridwatch {metadata.version('gridwatch')}"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--bogus"], "gridwatch: error: unknown option '--bogus'"),
        (["--bogus", "migrate"], "unknown option '--bogus'"),
        (["migrate", "--bogus"], "gridwatch migrate: error: unknown option '--bogus'"),
        (["migrate", "--storge", "plain"], "unknown option '--storge' (did you mean --storage?)"),
        (
            ["token", "create", "--role", "admin", "--nmae", "x"],
            "gridwatch token create: error: unknown option '--nmae' (did you mean --name?)",
        ),
        (["demo", "--sped", "3"], "unknown option '--sped' (did you mean --speed?)"),
        (["demo", "--sped=3"], "unknown option '--sped' (did you mean --speed?)"),
        (["serve", "-x"], "unknown option '-x'"),
        (["topology", "import", "--force", str(EXAMPLE_JSON)], "unknown option '--force'"),
    ],
)
def test_an_unknown_option_is_named(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert said in capsys.readouterr().err


def test_abbreviations_and_negative_values_are_not_unknown_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = build_parser().parse_args(["demo", "--spe", "30", "--scen", "storm"])
    assert (args.speed, args.scenario) == (30.0, "storm")
    with pytest.raises(SystemExit):
        main(["demo", "--speed", "-3"])
    err = capsys.readouterr().err
    assert "argument --speed: must be a positive finite number, got '-3'" in err
    assert "unknown option" not in err


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += _parsers(sub)
    return found


def test_every_argument_has_help() -> None:
    missing = [
        f"{p.prog} {'/'.join(a.option_strings) or a.dest}"
        for p in _parsers(build_parser())
        for a in p._actions
        if not a.help and not isinstance(a, argparse._SubParsersAction)
    ]
    assert missing == []


def test_demo_help_lists_the_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for name in ("breaker_trip", "comm_blackout", "nested", "planned", "quiet_day", "storm"):
        assert name in help_text
    assert "operator token" in help_text


# ------------------------------------------------ every argument, given malformed input

NOWHERE = "/nonexistent-gridwatch-dir/file"


def _malformed(tmp: Path) -> list[tuple[list[str], str]]:
    a_file = str(EXAMPLE_JSON)
    a_dir = str(tmp)
    return [
        (["--log-format", "yaml", "migrate"], "argument --log-format: invalid choice"),
        (["migrate", "--storage", "mysql"], "argument --storage: invalid choice"),
        (["serve", "--replay-from", "yesterday"], "not an RFC 3339 time"),
        (["serve", "--replay-from", "2026-11-23T08:00:00"], "time needs a zone"),
        (["serve", "--replay-from", "nan"], "must be a time from 1970 to 9999"),
        (["serve", "--replay-from", "inf"], "must be a time from 1970 to 9999"),
        (["serve", "--replay-from", "-5"], "must be a time from 1970 to 9999"),
        (["serve", "--replay-from", "1e20"], "must be a time from 1970 to 9999"),
        (["serve", "--replay-speed", "0"], "argument --replay-speed: must be a positive"),
        (["serve", "--replay-speed", "inf"], "argument --replay-speed: must be a positive"),
        (["serve", "--replay-speed", "fast"], "argument --replay-speed: not a number"),
        (["etr", "fit"], "required: history"),
        (["etr", "fit", NOWHERE], "argument history: no such file"),
        (["etr", "fit", a_dir], "argument history: not a file"),
        (["etr", "fit", a_file, "--no-activate=yes"], "--no-activate: ignored explicit"),
        (["etr", "fit", a_file, "--from-grid", "  "], "--from-grid: name the grid"),
        (["etr", "fit", a_file, "--from-grid", "x" * 201], "--from-grid: name the grid"),
        (["etr", "fit", a_file, "--from-grid", "a\x1b[2Jb"], "--from-grid: name the grid"),
        (["token", "create", "--name", "x"], "required: --role"),
        (["token", "create", "--role", "root", "--name", "x"], "argument --role: invalid choice"),
        (["token", "create", "--role", "admin", "--name", "  "], "1 to 200 characters"),
        (["token", "create", "--role", "admin", "--name", "x" * 201], "1 to 200 characters"),
        (["token", "list", "--live=1"], "argument --live: ignored explicit"),
        (["token", "revoke", " "], "argument NAME_OR_ID: a token name (1 to 200 characters)"),
        (["token", "revoke", "x", "--by", "both"], "argument --by: invalid choice"),
        (["topology", "import"], "required: file"),
        (["topology", "import", NOWHERE], "argument file: no such file or directory"),
        (["topology", "import", ""], "argument file: no such file or directory"),
        (["retention", "now"], "gridwatch retention: error: unexpected argument(s): 'now'"),
        (["demo", "--duration", "0"], "argument --duration: must be a positive"),
        (["demo", "--duration", "x" * 10_000], "(10000 chars)"),
        (["demo", "--speed", "nan"], "argument --speed: must be a positive"),
        (["demo", "--seed", "-1"], "argument --seed: must be 0 to 2**63-1"),
        (["demo", "--seed", "1.5"], "argument --seed: not a whole number"),
        (["demo", "--seed", str(2**64)], "argument --seed: must be 0 to 2**63-1"),
        (["demo", "--scenario", "nosuch"], "unknown scenario 'nosuch'; one of breaker_trip"),
        (["demo", "--scenario", NOWHERE + ".json"], "argument --scenario: no such file"),
        (["simulate"], "required: --scenario"),
        (["simulate", "--scenario", "nosuch"], "unknown scenario 'nosuch'"),
        (["simulate", "--scenario", "storm", "--speed", "-1"], "argument --speed: must be"),
        (["simulate", "--scenario", "storm", "--seed", "x"], "argument --seed: not a whole"),
        (["simulate", "--scenario", "storm", "--record", NOWHERE], "--record: no such directory"),
        (["simulate", "--scenario", "storm", "--truth", a_dir], "--truth: need a file name"),
        (
            ["simulate", "--scenario", "storm", "--topology-out", NOWHERE],
            "--topology-out: no such directory",
        ),
        (["simulate", "--scenario", "storm", "--network", "../etc"], "argument --network"),
        (["simulate", "--scenario", "storm", "--network", ""], "argument --network"),
        (["simulate", "--scenario", "storm", "--no-publish=no"], "ignored explicit argument"),
        (["replay"], "one of the arguments --recording --from is required"),
        (["replay", "--recording", NOWHERE], "argument --recording: no such file"),
        (["replay", "--recording", a_file, "--from", "0"], "not allowed with argument"),
        (["replay", "--from", "soon", "--to", "1"], "argument --from: not an RFC 3339"),
        (["replay", "--from", "100", "--to", "x"], "argument --to: not an RFC 3339"),
        (["replay", "--from", "100"], "gridwatch replay: error: --from needs --to"),
        (["replay", "--from", "100", "--to", "50"], "--to must be after --from"),
        (["replay", "--recording", a_file, "--to", "50"], "--to goes with --from"),
        (["replay", "--recording", a_file, "--speed", "0"], "argument --speed: must be"),
        (["score", "--truth", NOWHERE], "argument --truth: no such file"),
        (["score", "--truth", a_dir], "argument --truth: not a file"),
        (["score", "--recorded-json", NOWHERE], "argument --recorded-json: no such file"),
        (["score", "--recording", a_dir], "argument --recording: not a file"),
        (["score", "--json-out", NOWHERE], "argument --json-out: no such directory"),
        (["history"], "required: output"),
        (["history", a_dir], "argument output: need a file name"),
        (["history", NOWHERE], "argument output: no such directory"),
        (["history", "h.csv", "--years", "0"], "argument --years: must be a positive"),
        (["history", "h.csv", "--years", "51"], "argument --years: at most 50 years"),
        (["history", "h.csv", "--years", "nan"], "argument --years: must be a positive"),
        (["history", "h.csv", "--scenario", "nosuch"], "unknown scenario 'nosuch'"),
        (["history", "h.csv", "--seed", "-1"], "argument --seed: must be 0 to 2**63-1"),
        (["notify", "vapid-keys"], "required: path"),
        (["notify", "vapid-keys", a_dir], "argument path: need a file name"),
        (["notify", "vapid-keys", NOWHERE], "argument path: no such directory"),
        (["notify", "push"], "argument ACTION: invalid choice: 'push'"),
        (["notify", "costs", "--outage", "0"], "argument --outage: '0' is not an outage id"),
        (["notify", "costs", "--days", "0"], "argument --days: '0': give 1 to 3660 days"),
        (["notify", "costs", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
        (["notify", "costs", "--price-sms-segment-vnd", "-1"], "argument --price-sms-segment"),
        (["notify", "costs", "--price-zns-vnd", "nan"], "argument --price-zns-vnd: 'nan'"),
    ]


def test_every_argument_refuses_malformed_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    wrong = []
    for argv, said in _malformed(tmp_path):
        with pytest.raises(SystemExit) as info:
            main(argv)
        err = capsys.readouterr().err
        last = _lines(err)[-1] if err.strip() else ""
        if info.value.code != 2 or said not in err or len(err) > 2000 or "error:" not in last:
            wrong.append((argv[:4], info.value.code, err[-300:]))
    assert wrong == []


def test_every_argument_is_in_the_malformed_table(tmp_path: Path) -> None:
    """A new option must join the table above: its malformed input is tested too."""
    table = " ".join(" ".join(argv) for argv, _ in _malformed(tmp_path))
    said = " ".join(s for _, s in _malformed(tmp_path))
    untested = []
    for parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                continue
            if action.option_strings:
                if not any(o in table for o in action.option_strings):
                    untested.append(f"{parser.prog} {action.option_strings[0]}")
            elif f"argument {action.metavar or action.dest}" not in said and (
                f"required: {action.metavar or action.dest}" not in said
            ):
                untested.append(f"{parser.prog} {action.dest}")
    assert untested == []
