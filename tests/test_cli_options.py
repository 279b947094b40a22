"""Options several commands share are declared once (efsfast.cli.options),
so the commands that have them say the same thing about them."""
import argparse

import pytest

from efsfast.cli.app import build_parser


def _option(command, flag):
    """The argparse action of ``flag`` in ``command``'s parser."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices[command]
    return next(a for a in parser._actions if flag in a.option_strings)


def test_no_sync_help_names_what_each_command_writes():
    restore = _option("restore-tree", "--no-sync")
    decrypt = _option("decrypt-tree", "--no-sync")
    assert "what was written to reach stable storage" in restore.help
    assert "the plaintext to reach stable storage" in decrypt.help
    # the rest of the sentence is the shared one
    assert restore.help.replace("what was written", "") == decrypt.help.replace("the plaintext", "")
    for action in (restore, decrypt):
        assert action.dest == "no_sync" and action.default is False and action.nargs == 0


@pytest.mark.parametrize("command", ["restore-tree", "decrypt-tree", "verify-set"])
def test_with_is_the_same_option_everywhere(command):
    action = _option(command, "--with")
    reference = _option("restore-tree", "--with")
    assert (action.dest, action.metavar, action.default, action.help) == \
        ("sets", "SET", [], reference.help)
    assert "recorded" in action.help
    places = ["SET"] if command == "verify-set" else ["SET", "DEST"]
    args = build_parser().parse_args([command, "--with", "a", "--with", "b", *places])
    assert args.sets == ["a", "b"]
