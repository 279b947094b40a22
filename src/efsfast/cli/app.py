"""The efsfast program: the parser of every command, and the dispatch to
the command's module with the last word on errors and Ctrl-C."""
from __future__ import annotations

import argparse
import json
import sys

from .. import CancelledError, EfsError, __version__
from .options import whole_number
from .output import ExitCode, error_dict, fail
from .progress import ignore_ctrl_c_from_now_on

TYPE_CHECKING = False           # as in efsfast/__init__.py: no typing import at start-up
if TYPE_CHECKING:
    from typing import Collection, Optional, Sequence

# A command's modules are imported when it runs, not at start-up (the start-up
# is a tenth of a short tree job on ntfs-3g): see build_parser.


def build_parser(commands: Optional[Collection[str]] = None) -> argparse.ArgumentParser:
    """The parser of every command, or with ``commands`` one that defines in
    full at least those: the commands whose options come from modules that
    take long to import (backup sets, keys) are then left out unless named."""
    from . import rawcmds, tools

    def wanted(*names: str) -> bool:
        return commands is None or any(n in commands for n in names)

    p = argparse.ArgumentParser(prog="efsfast", description=(
        "Back up and restore Windows EFS-encrypted files as ciphertext."))
    p.add_argument("--version", action="version", version=f"efsfast {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    mode = argparse.ArgumentParser(add_help=False)
    mode.add_argument("--mode", choices=("strict", "compatible"), default="strict",
                      help="validation mode (default: strict)")

    rawcmds.add_inspect(sub, mode)
    if wanted("verify"):
        rawcmds.add_verify(sub, mode)
    rawcmds.add_synth(sub)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--overwrite", action="store_true",
                        help="replace an existing destination (the old one stays whole until "
                             "its replacement is complete)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--buffer-size", type=whole_number(1), default=None,
                        help="POSIX system side: system buffer size in bytes (default 65536)")
    rawcmds.add_restore_backup(sub, common, mode)

    tree_common = argparse.ArgumentParser(add_help=False, parents=[common, mode])
    tree_common.add_argument("--workers", type=whole_number(1), default=None,
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
    Python without either."""
    parser = build_parser(commands_named(sys.argv[1:] if argv is None else argv))
    # bench takes its own options (--quick, ...): hand it whatever follows
    args, rest = parser.parse_known_args(argv)
    args.program = argv is None          # the efsfast program, not a call from Python
    if args.command == "bench":
        args.bench_args = rest + args.bench_args
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        code: int = args.func(args)
        return code
    except (KeyboardInterrupt, CancelledError) as exc:
        if getattr(args, "json", False):
            print(json.dumps({"command": args.command, "ok": False, "interrupted": True}
                             | error_dict(exc)))
        print("efsfast: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except (EfsError, OSError, ValueError, TypeError) as exc:
        return fail(args, exc, ExitCode.FAILED)
    finally:
        if args.program:
            ignore_ctrl_c_from_now_on()
