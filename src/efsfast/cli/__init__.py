"""The efsfast command line (the ``efsfast`` program: ``efsfast.cli:main``).

One module per family of commands (rawcmds, trees, sets, crypto, tools),
the shared ones below them (output: exit codes, JSON records, summaries;
progress: the bar and Ctrl-C; options), and app on top (the parser and the
dispatch).  The library never imports this package."""
from .app import build_parser, commands_named, main
from .output import ExitCode

__all__ = ["ExitCode", "build_parser", "commands_named", "main"]
