"""``lam-mteb`` command line: the sub-commands every plugin registers (``register_commands``),
the core's own among them (:mod:`lam_mteb.commands`)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from lam_mteb import __version__
from lam_mteb.errors import LamMtebError

if TYPE_CHECKING:
    from lam_mteb.plugins import PluginHost


def build_parser(host: PluginHost) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lam-mteb",
        description="A pluggable MTEB: models, tasks and leaderboards from plugins.",
    )
    parser.add_argument("--version", action="version", version=f"lam-mteb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _plugin in host.call_hook("register_commands", lambda _name: sub):
        pass  # each plugin (the core first) adds its parsers; a failing one is reported, skipped
    return parser


def main(argv: list[str] | None = None, host: PluginHost | None = None) -> int:
    if host is None:  # an entry point: the process's plugin host
        from lam_mteb import plugins

        host = plugins.host
    parser = build_parser(host)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except LamMtebError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
