"""The CLI's argument parser and argument types: every argument is checked where it is
read, so malformed input is a one-line usage error (exit 2), never a traceback later on.

Kept free of heavy imports: ``gridwatch --help`` must stay instant.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import math
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final, NoReturn

MAX_SEED: Final = 2**63 - 1
MAX_HISTORY_YEARS: Final = 50.0  # from the scenarios' 2026 start, history stays after 1970
# RFC 3339 times from 1970 to the end of year 9999 (what datetime can show again).
MAX_EPOCH_S: Final = 253_402_300_799.0
# What argparse itself takes for a negative number rather than an option.
_NEGATIVE_NUMBER: Final = re.compile(r"^-\d+$|^-\d*\.\d+$")


def shown(text: str, limit: int = 60) -> str:
    """An argument quoted for an error message, cut so hostile input is not echoed whole."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} chars)"


def version_text() -> str:
    try:
        return f"gridwatch {metadata.version('gridwatch')}"
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "gridwatch (version unknown: not installed)"


class GridwatchParser(argparse.ArgumentParser):
    """argparse that names an unknown option (with the closest known one) ahead of any
    other complaint: a mistyped ``--nmae`` otherwise shows up as "--name is required"."""

    _given: list[str]

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # Sub-commands parse their own slice of the command line through this too.
        self._given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            # Complain in the words of the sub-command that was left with them.
            leaf: GridwatchParser = getattr(parsed, "parser_", self)
            flags = [e.split("=", 1)[0] for e in extras if _looks_like_option(e)]
            if flags:
                leaf.error("; ".join(leaf._unknown_message(f) for f in flags[:3]))
            leaf.error("unexpected argument(s): " + " ".join(shown(e) for e in extras[:5]))
        return parsed

    def error(self, message: str) -> NoReturn:
        unknown = self._unknown_options()
        if unknown:
            message = "; ".join(self._unknown_message(u) for u in unknown[:3])
        super().error(message)

    def _option_strings(self) -> list[str]:
        return [s for action in self._actions for s in action.option_strings]

    def _unknown_options(self) -> list[str]:
        known = self._option_strings()
        commands: set[str] = set()
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                commands |= set(action.choices)
        unknown = []
        for arg in getattr(self, "_given", []):
            if arg == "--" or arg in commands:
                break  # the rest is positional, or a sub-command's own
            if not _looks_like_option(arg):
                continue
            name = arg.split("=", 1)[0] if arg.startswith("--") else arg
            if name in known or (name.startswith("--") and any(k.startswith(name) for k in known)):
                continue  # exact, or an abbreviation argparse accepts
            unknown.append(name)
        return unknown

    def _unknown_message(self, name: str) -> str:
        longs = [s for s in self._option_strings() if s.startswith("--")]
        close = difflib.get_close_matches(name, longs, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else f" (see {self.prog} --help)"
        return f"unknown option {shown(name, 40)}{hint}"


def _looks_like_option(arg: str) -> bool:
    """As argparse reads it: a negative number or text with a space is a value."""
    return arg.startswith("-") and arg != "-" and " " not in arg and not _NEGATIVE_NUMBER.match(arg)


def mark_leaves(parser: argparse.ArgumentParser) -> None:
    """Each parser records itself in the namespace, so the deepest one chosen is known."""
    parser.set_defaults(parser_=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                mark_leaves(sub)


# ---------------------------------------------------------------- argument types


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {shown(text)}") from None
    if not value > 0 or value == math.inf:  # "not > 0" also catches NaN
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {shown(text)}")
    return value


def years(text: str) -> float:
    value = positive_float(text)
    if value > MAX_HISTORY_YEARS:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_HISTORY_YEARS:g} years of history, got {shown(text)}"
        )
    return value


def seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {shown(text)}") from None
    if not 0 <= value <= MAX_SEED:  # numpy's generators take no negative seed
        raise argparse.ArgumentTypeError(f"must be 0 to 2**63-1, got {shown(text)}")
    return value


def epoch_s(text: str) -> float:
    """RFC 3339 with a zone, or epoch seconds; 1970 to 9999 (anything else cannot be shown
    as a date again, and NaN or infinity would freeze a replay clock)."""
    try:
        value = float(text)
    except ValueError:
        value = _rfc3339_s(text)
    if not 0.0 <= value <= MAX_EPOCH_S:  # also refuses NaN
        raise argparse.ArgumentTypeError(
            f"must be a time from 1970 to 9999 (RFC 3339 or epoch seconds), got {shown(text)}"
        )
    return value


def _rfc3339_s(text: str) -> float:
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an RFC 3339 time or epoch seconds: {shown(text)}"
        ) from None
    if stamp.tzinfo is None:
        raise argparse.ArgumentTypeError(f"time needs a zone (Z or +07:00): {shown(text)}")
    return stamp.timestamp()


def existing_path(text: str) -> Path:
    path = Path(text)
    if not text or not path.exists():
        raise argparse.ArgumentTypeError(f"no such file or directory: {shown(text, 200)}")
    return path


def existing_file(text: str) -> Path:
    path = existing_path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"not a file: {shown(text, 200)}")
    return path


def output_path(text: str) -> Path:
    """A file to write: its directory must exist and it must not be a directory itself."""
    path = Path(text)
    if not text or path.is_dir():
        raise argparse.ArgumentTypeError(f"need a file name, got the directory {shown(text, 200)}")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(
            f"no such directory: {shown(str(path.parent), 200)} (for {shown(text, 200)})"
        )
    return path


def token_name(text: str) -> str:
    """``token create --name``: what the store accepts (1 to 200 characters, blanks dropped)."""
    name = text.strip()
    if not 1 <= len(name) <= 200:
        raise argparse.ArgumentTypeError(
            f"a name of 1 to 200 characters is needed, got {shown(text)}"
        )
    return name


def history_source(text: str) -> str:
    """``etr fit --from-grid``: whose history it is (printable, 1 to 200 characters)."""
    name = text.strip()
    if not 1 <= len(name) <= 200 or not name.isprintable():
        raise argparse.ArgumentTypeError(
            f"name the grid the history comes from (1 to 200 printable characters),"
            f" got {shown(text)}"
        )
    return name


def network_name(text: str) -> str:
    """A published network's name (the importer says which exist): plain characters only."""
    if not re.fullmatch(r"[A-Za-z0-9_.\-]{1,100}", text):
        raise argparse.ArgumentTypeError(
            f"a network name (letters, digits, _ . -; up to 100), got {shown(text)}"
        )
    return text


def scenario_names() -> list[str]:
    """The bundled scenarios, read from the package's folder without importing it (the
    simulators pull in numba: too slow for --help)."""
    spec = importlib.util.find_spec("simulators")
    folders: Any = spec.submodule_search_locations if spec is not None else None
    names: set[str] = set()
    for folder in folders or []:
        names |= {p.stem for p in (Path(folder) / "scenarios").glob("*.json")}
    return sorted(names)


def scenario_arg(text: str) -> str:
    """A bundled scenario's name, or a scenario JSON file (a path ending in .json)."""
    if text.endswith(".json") or "/" in text:
        existing_file(text)
        return text
    names = scenario_names()
    if text not in names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {shown(text)}; one of {', '.join(names)}, or a .json file"
        )
    return text
