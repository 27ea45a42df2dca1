"""The ``linepulse`` command: one sub-command per job, each registered by the module that owns it."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from service.exceptions import LinepulseError
from streams.exceptions import TopicSetupError

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
    try:
        # Building the parser imports every command's modules (numba, Faust, scikit-learn: seconds on
        # a loaded machine); a Ctrl-C meanwhile is a stop like any other, not a traceback.
        parser = build_parser()
    except KeyboardInterrupt:
        return 130
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (LinepulseError, TopicSetupError) as exc:
        # TopicSetupError: the brokers or topics the command needs are not usable (unreachable,
        # refused, partition counts that must agree but don't): the user's cluster, not a bug.
        print(f"linepulse: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _stdout_closed()


# 128 + SIGPIPE: what a shell reports for a tool that a closed pipe stopped (`... | head -1`).
_EXIT_BROKEN_PIPE = 141


def _stdout_closed() -> int:
    """The reader of our stdout went away: stop quietly, as Unix tools do.

    Python ignores SIGPIPE, so the write raised instead; the interpreter's final flush of stdout
    would raise again and print "Exception ignored ...", so stdout is pointed at /dev/null first
    (the recipe in the Python docs for signal/SIGPIPE).
    """
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # replaced by an in-memory stream: nothing to do
        return _EXIT_BROKEN_PIPE
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fileno)
    finally:
        os.close(devnull)
    return _EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
