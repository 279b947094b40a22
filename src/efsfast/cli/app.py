"""The efsfast program: the parser of every command, and the dispatch to
the command's module with the last word on errors and Ctrl-C."""
from __future__ import annotations

import argparse
import re
import sys

from .. import CancelledError, EfsError, __version__
from .options import buffer_size, workers
from .output import (ExitCode, emit, fail, failure, quieten_stdout, record, show_names_escaped,
                     usage_failure, write)
from .progress import ignore_ctrl_c_from_now_on

TYPE_CHECKING = False           # as in efsfast/__init__.py: no typing import at start-up
if TYPE_CHECKING:
    from typing import Collection, NoReturn, Optional, Sequence

# A command's modules are imported when it runs, not at start-up (the start-up
# is a tenth of a short tree job on ntfs-3g): see build_parser.


class UsageError(Exception):
    """A command line argparse refused: its message, the parser whose usage
    goes with it, and the option at fault where the message names one."""

    def __init__(self, message: str, parser: argparse.ArgumentParser,
                 command: Optional[str] = None) -> None:
        super().__init__(message)
        self.parser = parser
        # a subcommand's parser is "efsfast COMMAND"; the top one's errors
        # (no command, an unknown one) name none
        prog = parser.prog.split()
        self.command = command or (prog[1] if len(prog) > 1 else None)
        m = re.match(r"argument (-[-\w]+)", message)
        self.option = m.group(1) if m else None


class Parser(argparse.ArgumentParser):
    """argparse, with its errors raised to main (which prints the usage and,
    with --json, the record) instead of exiting from inside the parser."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self)


def build_parser(commands: Optional[Collection[str]] = None) -> argparse.ArgumentParser:
    """The parser of every command, or with ``commands`` one that defines in
    full at least those: the commands whose options come from modules that
    take long to import (backup sets, keys) are then left out unless named."""
    from . import rawcmds, tools

    def wanted(*names: str) -> bool:
        return commands is None or any(n in commands for n in names)

    p = Parser(prog="efsfast", description=(
        "Back up and restore Windows EFS-encrypted files as ciphertext."))
    p.add_argument("--version", action="version", version=f"efsfast {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    mode = argparse.ArgumentParser(add_help=False)
    mode.add_argument("--mode", choices=("strict", "compatible"), default="strict",
                      help="validation mode (default: strict)")

    rawcmds.add_inspect(sub, mode)
    if wanted("verify"):
        rawcmds.add_verify(sub, mode)
    if wanted("synth"):
        rawcmds.add_synth(sub)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--overwrite", action="store_true",
                        help="replace an existing destination (the old one stays whole until "
                             "its replacement is complete)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--buffer-size", type=buffer_size(), default=None,
                        help="POSIX system side: system buffer size in bytes (default 65536)")
    rawcmds.add_restore_backup(sub, common, mode)

    tree_common = argparse.ArgumentParser(add_help=False, parents=[common, mode])
    tree_common.add_argument("--workers", type=workers(), default=None,
                             help="parallel workers (default: 2 on FUSE mounts such as ntfs-3g, whose daemon is single-threaded; one per CPU elsewhere)")
    tree_common.add_argument("--quiet", action="store_true", help="no progress bar")
    tree_common.add_argument("--skip-existing", action="store_true",
                             help="leave what is already at the destination alone (resume an "
                                  "interrupted run)")
    if wanted("restore-tree", "backup-tree"):
        from . import trees
        trees.register(sub, tree_common)
    if wanted("verify-set"):
        from . import sets
        sets.register(sub, mode)               # --key: the key options

    if wanted("decrypt", "decrypt-tree"):
        from . import crypto
        crypto.register(sub, common, mode)
    if wanted("encrypt"):
        from . import encrypt
        encrypt.register(sub)

    tools.register(sub)
    if commands is not None and not set(commands) <= set(sub.choices):
        return build_parser()            # not a command: the error lists them all
    return p


def commands_named(argv: Sequence[str]) -> Optional[Collection[str]]:
    """The commands a parser for ``argv`` must define: the one it names; none
    for ``--version``, which answers before any command is read; all of them
    for help and usage errors, which list them."""
    for arg in argv:
        if arg in ("-h", "--help"):
            return None
        if not arg.startswith("-"):
            return (arg,)
    return () if "--version" in argv else None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run one command.  With ``argv`` None this is the efsfast program
    (sys.argv): Ctrl-C is then handled for the life of the process and
    blocked once the command has reported.  Pass ``argv`` to call it from
    Python without either.  Every outcome, usage errors included, returns
    an exit code (docs/JSON-OUTPUT.md) and with --json prints one record."""
    words = list(sys.argv[1:] if argv is None else argv)
    if argv is None:
        show_names_escaped()
    named = commands_named(words)
    parser = build_parser(named)
    try:
        # bench takes its own options (--quick, ...): hand it whatever follows
        args, rest = parser.parse_known_args(words)
        if args.command != "bench" and rest:
            raise UsageError(f"unrecognized arguments: {' '.join(rest)}", parser, args.command)
    except UsageError as exc:
        return _usage_error(exc, words)
    args.program = argv is None          # the efsfast program, not a call from Python
    if args.command == "bench":
        args.bench_args = rest + args.bench_args
    try:
        code: int = args.func(args)
        return code
    except (KeyboardInterrupt, CancelledError) as exc:
        if getattr(args, "json", False):
            emit(args, record(args.command, ExitCode.INTERRUPTED, [failure(exc)]))
        write(sys.stderr, "efsfast: interrupted\n")
        return ExitCode.INTERRUPTED
    except BrokenPipeError as exc:       # the reader of stdout went away: quietly
        quieten_stdout()
        if getattr(args, "json", False) and getattr(args, "data_on_stdout", False):
            emit(args, record(args.command, ExitCode.FAILED, [failure(exc, "-")]))
        return ExitCode.FAILED
    except FileExistsError as exc:      # DEST is there and --overwrite was not given:
        return fail(args, exc, ExitCode.REFUSED)        # refused, nothing written
    except (EfsError, OSError, ValueError, TypeError) as exc:
        return fail(args, exc, ExitCode.FAILED)
    except Exception as exc:            # a bug: the record still comes, then the traceback
        if getattr(args, "json", False):
            emit(args, record(args.command, ExitCode.FAILED, [failure(exc)]))
        raise
    finally:
        if argv is None:
            ignore_ctrl_c_from_now_on()


def _usage_error(exc: UsageError, words: Sequence[str]) -> int:
    """What argparse says (usage, then the error), and with --json the record."""
    exc.parser.print_usage(sys.stderr)
    write(sys.stderr, f"{exc.parser.prog}: error: {exc}\n")
    if "--json" in words:
        emit(None, record(exc.command, ExitCode.REFUSED,
                          [usage_failure(str(exc), exc.option)]))
    return ExitCode.REFUSED
