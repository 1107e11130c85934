"""``python -m notifier words --js``: print the customer page's generated words block.

The dispatcher process needs the database, so it lives with the application:
``python -m gridwatch.app.dispatch_process dispatch``.
"""

from __future__ import annotations

import argparse
import sys

from notifier._plain_words import web_words_js


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m notifier")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("words", help="print the customer page's generated words block")
    w.add_argument("--js", action="store_true", required=True, help="as JavaScript for app.js")
    parser.parse_args(argv)
    print(web_words_js())
    return 0


if __name__ == "__main__":
    sys.exit(main())
