"""Message templates: one editable file per kind and language, checked at start-up.

File ``templates/<lang>/<kind>.txt``: lines starting ``#`` are comments, the first other
line is ``title: ...`` (the app-alert title), an optional line ``sms: ...`` is said in an SMS
only (a reply keyword means nothing in an app alert), the rest is the body, which goes on
from the title rather than repeating it: an SMS is ``title: body sms``. Placeholders are
``{name}`` from a fixed list; ``templates/<lang>/_fragments.txt`` holds ``key = text``
pieces (ETR window wording, "unknown" wording). Every problem is reported at once by
``load_templates()``, so a typo fails the deploy, not the 3 a.m. outage.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from notifier._errors import TemplateError
from notifier._events import LANGUAGES, NOTICE_KINDS, REPLY_KINDS

PLACEHOLDERS: Final = frozenset(
    {"where", "why", "since", "at", "etr_window", "etr_p50", "from", "until", "keywords"}
)
# Circular 22/2020/TT-BCT: every notice says where, why, from when and until when.
REQUIRED: Final[Mapping[str, frozenset[str]]] = {
    "outage_detected": frozenset({"where", "why", "since", "etr_window"}),
    "etr_updated": frozenset({"where", "etr_window"}),
    "restored": frozenset({"where"}),
    "still_out_nested": frozenset({"where", "etr_window"}),
    "planned_notice": frozenset({"where", "why", "from", "until"}),
    "planned_reminder": frozenset({"where", "why", "from", "until"}),
    "planned_cancelled": frozenset({"where", "from", "until"}),
    "reply_status": frozenset({"where", "etr_window"}),
}
FRAGMENTS: Final[Mapping[str, frozenset[str]]] = {
    "etr_window": frozenset({"from", "until"}),
    "etr_unknown": frozenset(),
    "where_unknown": frozenset(),
    "why_unknown": frozenset(),
}
_MAX_FILE_BYTES = 4096
_FRAGMENT_FILE = "_fragments.txt"


@dataclass(frozen=True, slots=True)
class Template:
    kind: str
    language: str
    title: str
    body: str
    sms_tail: str = ""  # said in an SMS only (the reply keyword)


@dataclass(frozen=True, slots=True)
class Rendered:
    title: str
    body: str
    sms_tail: str = ""


def _fields(text: str, where: str, problems: list[str]) -> set[str]:
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        problems.append(
            f"{where}: malformed braces ({exc}); write {{{{ and }}}} for literal braces"
        )
        return names
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            problems.append(
                f"{where}: unknown placeholder {{{name}}}; known: {', '.join(sorted(PLACEHOLDERS))}"
            )
        elif spec or conversion:
            problems.append(
                f"{where}: placeholder {{{name}}} must not carry a format or conversion"
            )
        names.add(name)
    return names


def _read(path: Path, label: str, problems: list[str]) -> str | None:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(f"{label}: cannot read ({exc.strerror})")
        return None
    if len(raw) > _MAX_FILE_BYTES:
        problems.append(f"{label}: {len(raw)} bytes, more than {_MAX_FILE_BYTES}")
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(f"{label}: not UTF-8")
        return None


def _parse_template(
    text: str, kind: str, language: str, label: str, problems: list[str]
) -> Template | None:
    lines = [line.rstrip() for line in text.splitlines() if not line.lstrip().startswith("#")]
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines or not lines[0].lower().startswith("title:"):
        problems.append(f"{label}: first line must be 'title: ...'")
        return None
    title = lines[0].split(":", 1)[1].strip()
    tails = [line for line in lines[1:] if line.lower().startswith("sms:")]
    if len(tails) > 1:
        problems.append(f"{label}: more than one 'sms: ...' line")
    sms_tail = tails[0].split(":", 1)[1].strip() if tails else ""
    body = "\n".join(line for line in lines[1:] if line not in tails).strip()
    if not body:
        problems.append(f"{label}: empty body")
        return None
    used = (
        _fields(title, label + " (title)", problems)
        | _fields(body, label, problems)
        | _fields(sms_tail, label + " (sms)", problems)
    )
    missing = REQUIRED.get(kind, frozenset()) - used
    if missing:
        problems.append(
            f"{label}: must mention {', '.join('{' + m + '}' for m in sorted(missing))}"
            " (Circular 22/2020/TT-BCT: where, why, from when, until when)"
        )
    return Template(kind, language, title, body, sms_tail)


def _parse_fragments(text: str, label: str, problems: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or key not in FRAGMENTS:
            problems.append(f"{label} line {number}: expected one of {', '.join(FRAGMENTS)} = text")
            continue
        used = _fields(value.strip(), f"{label} line {number}", problems)
        if missing := FRAGMENTS[key] - used:
            problems.append(f"{label} line {number}: {key} must mention {sorted(missing)}")
        found[key] = value.strip()
    for key in FRAGMENTS:
        if key not in found:
            problems.append(f"{label}: missing {key} = ...")
    return found


class Templates:
    """Loaded, validated templates; ``render`` cannot fail on a placeholder."""

    def __init__(
        self,
        templates: Mapping[tuple[str, str], Template],
        fragments: Mapping[str, Mapping[str, str]],
    ) -> None:
        self._templates = dict(templates)
        self._fragments = {lang: dict(f) for lang, f in fragments.items()}

    def template(self, kind: str, language: str) -> Template:
        return self._templates[(kind, language)]

    def fragment(self, language: str, key: str, **params: str) -> str:
        return self._fragments[language][key].format_map(params)

    def render(self, kind: str, language: str, params: Mapping[str, str]) -> Rendered:
        template = self._templates[(kind, language)]
        values = {name: params.get(name, "") for name in PLACEHOLDERS}
        return Rendered(
            template.title.format_map(values),
            template.body.format_map(values),
            template.sms_tail.format_map(values),
        )


def default_template_dir() -> Path:
    return Path(__file__).resolve().parent / "templates"


def load_templates(directory: Path | str | None = None) -> Templates:
    """Load and check every template; raise TemplateError listing all problems."""
    root = Path(directory) if directory is not None else default_template_dir()
    problems: list[str] = []
    templates: dict[tuple[str, str], Template] = {}
    fragments: dict[str, dict[str, str]] = {}
    known = set(NOTICE_KINDS) | set(REPLY_KINDS)
    for language in LANGUAGES:
        lang_dir = root / language
        if not lang_dir.is_dir():
            problems.append(f"{lang_dir}: missing language directory")
            continue
        for path in sorted(lang_dir.glob("*.txt")):
            if path.name != _FRAGMENT_FILE and path.stem not in known:
                problems.append(
                    f"{path}: unknown kind {path.stem!r}; known: {', '.join(sorted(known))}"
                )
        for kind in (*NOTICE_KINDS, *REPLY_KINDS):
            path = lang_dir / f"{kind}.txt"
            label = f"{language}/{kind}.txt"
            if not path.is_file():
                problems.append(
                    f"{label}: missing template for kind {kind!r} in language {language!r}"
                )
                continue
            text = _read(path, label, problems)
            if text is not None and (tpl := _parse_template(text, kind, language, label, problems)):
                templates[(kind, language)] = tpl
        frag_path = lang_dir / _FRAGMENT_FILE
        frag_text = (
            _read(frag_path, f"{language}/{_FRAGMENT_FILE}", problems)
            if frag_path.is_file()
            else None
        )
        if frag_text is None and not frag_path.is_file():
            problems.append(f"{language}/{_FRAGMENT_FILE}: missing")
        elif frag_text is not None:
            fragments[language] = _parse_fragments(
                frag_text, f"{language}/{_FRAGMENT_FILE}", problems
            )
    if problems:
        raise TemplateError(problems)
    return Templates(templates, fragments)
