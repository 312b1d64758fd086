"""`moodspeaker <command>`: the appliance's command line. Each command lives in moodspeaker/commands/."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from moodspeaker.errors import EXIT_BUG, MoodspeakerError

# One module per command group; each has `register(subparsers)` that adds its parsers and sets `func`.
COMMAND_MODULES = (
    "moodspeaker.commands.eval",
    "moodspeaker.commands.vision",
    "moodspeaker.commands.bench",
    "moodspeaker.commands.player",
    "moodspeaker.commands.run",
    "moodspeaker.commands.feedback",
    "moodspeaker.commands.spotify_login",
    "moodspeaker.commands.model",
    "moodspeaker.commands.status",
    "moodspeaker.commands.privacy",
    "moodspeaker.commands.volume",
    "moodspeaker.commands.resume",
    "moodspeaker.commands.reload",
    "moodspeaker.commands.config",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moodspeaker", description="Emotion-aware smart speaker.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _describe_subcommands(parser)
    return parser


def _describe_subcommands(parser: argparse.ArgumentParser) -> None:
    """Give every (sub)command's own --help the one line it shows in its parent's list, unless it has a description."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                child = action.choices[choice.dest]
                if child.description is None:
                    child.description = choice.help
                _describe_subcommands(child)


def main(argv: list[str] | None = None) -> int:
    """Run one command. A MoodspeakerError is one line on stderr and its exit code (2 the owner's mistake,
    3 the model); anything else is a bug: exit 1, with the traceback only under `-v`."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except MoodspeakerError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"moodspeaker {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"moodspeaker {args.command}: internal error, please report it: {type(exc).__name__}: {exc}"
              + ("" if args.verbose else " (run with -v for the traceback)"), file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
