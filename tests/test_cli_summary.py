"""What a tree job shows a person: the progress bar (its counts, MB and
MB/s current, ended before anything else is printed) and the summary
(failures grouped by cause, a cascade under its cause, the summary itself
last, a resume hint after Ctrl-C)."""
import argparse
import io
import json
import os
import re
import time

import pytest

import efsfast
from efsfast import cli, tree
from efsfast.api import BulkResult, ItemError
from efsfast.cli.output import NAMED_PER_CAUSE, group_failures, report_tree
from efsfast.cli.progress import Progress

from test_cli import small_set
from ttyrun import run_in_pty


class Terminal(io.StringIO):
    """What a program writes to a terminal (isatty: a bar is drawn)."""

    def isatty(self):
        return True


def _terminal(monkeypatch):
    """sys.stderr as a terminal, for the rest of the test (set in the test
    itself: pytest's own capture replaces sys.stderr again after fixtures)."""
    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    return term


def _states(text):
    """Each state of the bar drawn (tqdm redraws its line after a \\r)."""
    return [s for s in re.split(r"[\r\n]", text) if s.strip()]


def _files(state):
    m = re.search(r"(\d+)(?:/(\d+))? files", state)
    return int(m.group(1)), (int(m.group(2)) if m.group(2) else None)


def _mb(state):
    return float(re.search(r"files, ([\d.]+) MB", state).group(1))


def test_bar_shows_the_mb_of_the_files_it_counts(monkeypatch):
    terminal = _terminal(monkeypatch)
    bar = Progress("restore", 0, True)
    for i in range(1, 6):
        bar(i, i * 1_000_000, 5)
        time.sleep(0.12)            # past tqdm's redraw interval: every report is drawn
    bar.close()
    states = _states(terminal.getvalue())
    assert len(states) >= 3         # (tqdm skips some, by its own pacing)
    for s in states:                # the MB drawn is the MB of the count drawn beside it
        assert _mb(s) == _files(s)[0], s
        assert "files, ," not in s, s
    assert all("MB/s" in s for s in states[1:])     # (a rate once time has passed)
    assert _files(states[-1]) == (5, 5)


def test_reports_arriving_out_of_order_never_count_down(monkeypatch):
    terminal = _terminal(monkeypatch)
    bar = Progress("backup", 0, True)
    # worker threads report the counts they saw; the last to report may
    # have seen fewer than the one before it
    for files, nbytes in ((1, 100), (3, 300), (2, 200), (4, 400), (5, 500), (4, 400)):
        bar(files, nbytes, 5)
    bar.close()
    last = _states(terminal.getvalue())[-1]
    assert _files(last) == (5, 5) and "100%" in last


def test_total_follows_plain_files_found_and_a_stream_has_none(monkeypatch):
    terminal = _terminal(monkeypatch)
    bar = Progress("backup", 0, True)
    bar(1, 10, 10)
    bar(2, 20, 8)                   # two files found not encrypted: 8 to do
    bar(8, 80, 8)
    bar.close()
    assert _files(_states(terminal.getvalue())[-1]) == (8, 8)
    terminal.seek(0)
    terminal.truncate()
    bar = Progress("restore", 0, True)
    bar(3, 3_000_000, 0)            # a tar stream: the total is not known
    bar.close()
    last = _states(terminal.getvalue())[-1]
    assert _files(last) == (3, None) and "%" not in last and "3.0 MB" in last


def test_close_ends_the_line_and_draws_nothing_after(monkeypatch):
    terminal = _terminal(monkeypatch)
    bar = Progress("restore", 0, True)
    bar.scanning("/src")
    bar(1, 10, 2)
    bar(2, 20, 2)
    bar.close()
    drawn = terminal.getvalue()
    assert drawn.endswith("\n")
    print("summary", file=terminal)
    bar.close()                     # again: nothing
    bar(2, 20, 2)                   # a late report: nothing either
    assert terminal.getvalue() == drawn + "summary\n"


@pytest.fixture
def encrypted_tree(xattr_dir):
    src = xattr_dir / "set"
    small_set(src, 40)
    assert cli.main(["restore-tree", str(src), str(xattr_dir / "tree"), "--quiet"]) == 0
    return xattr_dir / "tree"


def test_backup_tree_to_stdout_ends_at_n_of_n_then_the_summary(encrypted_tree, monkeypatch):
    terminal = _terminal(monkeypatch)
    out = io.BytesIO()
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(out))
    assert cli.main(["backup-tree", str(encrypted_tree), "-"]) == 0
    text = terminal.getvalue()
    bar, _, after = text.rpartition("backup: ")[2].partition("\n")
    assert _files("backup: " + bar) == (42, 42), text
    # the summary (on stderr, beside the bar: stdout carries the set) comes
    # after the bar's last line, and the bar is not drawn again
    assert after.startswith("backup-tree: 42 done, 0 failed"), text
    assert "\r" not in after and "files," not in after
    assert len(out.getvalue()) > 0


def test_a_refusal_does_not_land_on_the_scanning_line(encrypted_tree, monkeypatch):
    terminal = _terminal(monkeypatch)
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(io.BytesIO()))
    assert cli.main(["backup-tree", str(encrypted_tree), "-", "--skip-existing"]) == 2
    text = terminal.getvalue()
    assert text.startswith(f"backup: scanning {encrypted_tree} ..."), text
    assert text.rpartition("\x1b[K")[2] == "efsfast: --skip-existing needs a folder set, not -\n"


def test_summary_follows_the_bar_on_a_terminal(xattr_dir):
    src = xattr_dir / "set"
    small_set(src, 100)
    code, screen = run_in_pty(["restore-tree", str(src), str(xattr_dir / "tty")])
    assert code == 0, screen
    last_bar = screen.rindex("102/102 files")
    summary = screen.rindex("restore-tree: 102 done, 0 failed")
    assert last_bar < summary, screen
    assert "\r" not in screen[summary:].replace("\r\n", "\n"), screen      # no redraw after
    assert "MB/s" in screen


def test_demo_ends_each_bar_before_its_line(tmp_path):
    code, screen = run_in_pty(["demo", str(tmp_path / "work"), "--files", "30"])
    assert code == 0, screen
    for line in ("restored them with", "backed the tree up again"):
        i = screen.index(line)
        assert screen[i - 1] == "\n", screen[max(0, i - 200):i + 20]


def _args(**kw):
    return argparse.Namespace(**({"json": False, "dest": "/dest"} | kw))


def test_many_failures_name_a_few_and_count_the_rest(xattr_dir, capsys):
    src = xattr_dir / "set"
    small_set(src, 3)
    for i in range(NAMED_PER_CAUSE + 3):
        (src / f"bad{i}.efsraw").write_bytes(b"garbage")
    (src / "b" / "taken.bin.efsraw").write_bytes(efsfast.synthetic_raw(10, seed=9))
    for dest in (xattr_dir / "out", xattr_dir / "out2"):
        (dest / "b").mkdir(parents=True)
        (dest / "b" / "taken.bin").write_bytes(b"in the way")
    dest = xattr_dir / "out"
    assert cli.main(["restore-tree", str(src), str(dest), "--quiet"]) == 1
    out = capsys.readouterr().out
    n = NAMED_PER_CAUSE + 3
    assert f"  {n} items failed: not a valid raw stream" in out
    assert sum(1 for ln in out.splitlines() if re.match(r"    /.*bad\d\b", ln)) == NAMED_PER_CAUSE
    assert "    and 3 more (--json lists every one)" in out
    assert "  1 item failed: it exists (add --overwrite" in out           # its own cause
    assert f"    {dest / 'b' / 'taken.bin'}" in out
    assert out.index(f"{n} items failed") < out.index("1 item failed")    # largest first
    lines = out.splitlines()                                               # then the summary
    summary = next(i for i, ln in enumerate(lines) if ln.startswith("restore-tree: "))
    assert summary > max(i for i, ln in enumerate(lines) if "failed:" in ln or "more" in ln)
    assert cli.main(["restore-tree", str(src), str(xattr_dir / "out2"), "--quiet", "--json"]) == 1
    rec = json.loads(capsys.readouterr().out)
    assert rec["counts"]["failed"] == n + 1 and len(rec["failures"]) == n + 1       # all of them


def test_a_folder_cascade_is_counted_under_the_folders_cause(xattr_dir, capsys):
    src = xattr_dir / "set"
    (src / "Docs").mkdir(parents=True)
    (src / "Docs.efsraw").write_bytes(b"garbage: a damaged folder stream")
    for name in ("a", "b", "c"):
        (src / "Docs" / f"{name}.efsraw").write_bytes(efsfast.synthetic_raw(100, seed=1))
    (src / "top.efsraw").write_bytes(efsfast.synthetic_raw(100, seed=2))
    assert cli.main(["restore-tree", str(src), str(xattr_dir / "out"), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "4 items failed: not a valid raw stream" in out, out
    assert "(3 of them not restored only because an encrypted folder they are in failed)" in out
    assert "parent folder failed" not in out                  # the cause, not the cascade
    assert "restore-tree: 1 done, 4 failed" in out
    assert cli.main(["restore-tree", str(src), str(xattr_dir / "out2"), "--quiet",
                     "--json"]) == 1
    rec = json.loads(capsys.readouterr().out)              # --json keeps each item's own error
    errors = [f["error"] for f in rec["failures"]]
    assert len(errors) == 4
    assert sum("not a valid raw stream: R1 E_RAW_MAGIC at offset 0" in e for e in errors) == 1
    assert sum(e.startswith("parent folder failed") for e in errors) == 3


def test_a_cascade_chain_counts_under_the_outermost_cause():
    from efsfast._errors import EfsError
    from efsfast.treefolders import blocked
    top = EfsError(50, "not mounted with efs_raw", "/d/A")
    inner = blocked(EfsError(3, "parent folder failed", "/d/A/B"), "/d/A")
    leaf = blocked(EfsError(3, "parent folder failed", "/d/A/B/c"), "/d/A/B")
    other = EfsError(13, "something else", "/d/x")
    groups = group_failures([ItemError(0, "/d/A", top), ItemError(1, "/d/A/B", inner),
                             ItemError(2, "/d/A/B/c", leaf), ItemError(3, "/d/x", other)])
    assert [(g.text, g.own, g.inside) for g in groups] == [
        ("not mounted with efs_raw", ["/d/A"], ["/d/A/B", "/d/A/B/c"]),
        ("something else", ["/d/x"], [])]


@pytest.mark.parametrize("kind, dest, hint", [("restore-tree", "/d", True),
                                              ("decrypt-tree", "/d", True),
                                              ("backup-tree", "/set", True),
                                              ("backup-tree", "-", False)])
def test_an_interrupted_summary_says_how_to_resume(kind, dest, hint, capsys):
    r = tree.TreeResult(BulkResult(results=[], cancelled=True))
    assert report_tree(_args(dest=dest), kind, r, {}, interrupted=True) == 130
    out = capsys.readouterr().out
    assert "(interrupted)" in out
    assert (f"run the same {kind} again with --skip-existing" in out) is hint
    # said once: an incomplete set's note already says it
    note = "the set is incomplete (interrupted): resume it with backup-tree --skip-existing"
    report_tree(_args(dest=dest), kind, r, {"notes": [note]}, interrupted=True)
    assert capsys.readouterr().out.count("--skip-existing") == 1
