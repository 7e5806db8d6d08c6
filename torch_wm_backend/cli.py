"""``tvm-wm``: the command line. Each stage that has commands registers them here."""
from __future__ import annotations

import argparse
import logging
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tvm-wm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    from .cache import cli as cache_cli
    from .tune import cli as tune_cli
    from .world_model import cli as wm_cli

    tune_cli.register(sub)
    cache_cli.register(sub)
    wm_cli.register(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from .errors import TvmWmError

    try:
        return int(args.func(args) or 0)
    except TvmWmError as err:  # bad input: one line, not a traceback
        raise SystemExit(f"tvm-wm {args.command}: {err}") from None


if __name__ == "__main__":
    sys.exit(main())
