"""The ``linepulse`` command: one sub-command per job, each registered by the module that owns it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from service.exceptions import LinepulseError

__all__ = ["main"]

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _registrars() -> list[Registrar]:
    # Imported here so `linepulse --help` stays fast and one broken optional part names itself.
    from service import baseline, evaluate_skab, models_command, train
    from service import commands as service_commands
    from service.brokers import commands as broker_commands
    from service.simulator import commands as simulator_commands

    return [
        service_commands.register,
        simulator_commands.register,
        broker_commands.register,
        train.register,
        models_command.register,
        evaluate_skab.register,
        baseline.register,
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linepulse",
        description="Real-time production analytics and anomaly detection for factories.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _registrars():
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except LinepulseError as exc:
        print(f"linepulse: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
