"""The command line tells the truth when the input is wrong (issue 10,
cases 2 and 8 and the smaller findings): usage errors exit 2 and create
nothing, every failure has a --json record on stdout naming the file and the
cause, and the messages speak the command line's language."""
import json
import os
import subprocess
import sys

import pytest

import efsfast
from efsfast import cli

from conftest import listing
from test_cli import small_set
from ttyrun import run_in_pty
from test_error_kinds import truncated_over_intact


def run_cli(*args, env=None):
    p = subprocess.run([sys.executable, "-m", "efsfast", *map(str, args)],
                       capture_output=True, text=True, env=env)
    return p.returncode, p.stdout, p.stderr


# ---- case 2: a missing or mistyped source ----

@pytest.mark.parametrize("command", ["backup-tree", "restore-tree"])
def test_missing_source_folder_is_a_usage_error(command, tmp_path, capsys):
    out = tmp_path / "OUT"
    assert cli.main([command, str(tmp_path / "nonexistent_dir"), str(out)]) == 2
    err = capsys.readouterr().err
    assert "nonexistent_dir" in err and "no such folder" in err
    assert cli.main([command, str(tmp_path / "nonexistent_dir"), str(out), "--json"]) == 2
    rec = json.loads(capsys.readouterr().out)
    assert rec["ok"] is False and rec["command"] == command
    assert rec["failures"][0]["path"] == str(tmp_path / "nonexistent_dir")
    assert rec["failures"][0]["kind"] == "not_found" and rec["failures"][0]["errno"] == 2
    assert listing(tmp_path) == []                        # OUT was not created


@pytest.mark.parametrize("command", ["backup-tree", "restore-tree"])
def test_a_file_as_source_folder_is_a_usage_error(command, tmp_path, capsys):
    f = tmp_path / "doc.efsraw"
    f.write_bytes(efsfast.synthetic_raw(10, seed=1))
    assert cli.main([command, str(f), str(tmp_path / "OUT")]) == 2
    err = capsys.readouterr().err
    assert "doc.efsraw" in err and "not a folder" in err
    assert cli.main([command, str(f), str(tmp_path / "OUT"), "--json"]) == 2
    rec = json.loads(capsys.readouterr().out)
    assert rec["failures"][0]["kind"] == "not_a_directory" and rec["failures"][0]["path"] == str(f)
    assert listing(tmp_path) == ["doc.efsraw"]


def test_tree_api_refuses_a_missing_source(tmp_path):
    from efsfast import tree
    with pytest.raises(FileNotFoundError):
        tree.restore_tree(tmp_path / "nonexistent", tmp_path / "OUT")
    with pytest.raises(NotADirectoryError):
        (tmp_path / "f").write_bytes(b"")
        tree.backup_tree(tmp_path / "f", tmp_path / "OUT")
    assert listing(tmp_path) == ["f"]


@pytest.mark.parametrize("args", [["--buffer-size", "0"], ["--workers", "-1"],
                                  ["--workers", "0"], ["--buffer-size", "lots"]])
def test_bad_numbers_are_usage_errors(args, tmp_path):
    code, out, err = run_cli("restore-tree", tmp_path, tmp_path / "OUT", *args)
    assert code == 2 and out == ""
    assert args[0] in err and ("at least 1" in err or "whole number" in err)
    assert listing(tmp_path) == []


# ---- case 8: --json holds for errors too ----

def test_failing_restore_json_names_source_rule_and_offset(xattr_dir):
    src, dest = truncated_over_intact(xattr_dir)
    code, out, err = run_cli("restore", src, dest, "--overwrite", "--json")
    assert code == 1 and err == ""
    rec = json.loads(out)
    assert rec["ok"] is False and rec["failures"][0]["kind"] == "format"
    assert (rec["failures"][0]["source"], rec["failures"][0]["path"], rec["failures"][0]["rule"]) == (str(src), str(dest), "R8")
    assert rec["failures"][0]["offset"] > 0 and rec["failures"][0]["code"] == "E_SEG_LEN"
    code, out, err = run_cli("restore", src, dest, "--overwrite")
    assert code == 1 and out == ""
    # the message blames the source, and says the old file was left alone
    assert err.startswith(f"efsfast: {src}: not a valid raw stream: R8 E_SEG_LEN at offset")
    assert f"nothing was written to {dest}" in err
    assert dest.read_bytes() == b"the intact old file"
    assert listing(xattr_dir) == ["r_trunc.bin", "r_trunc.bin.out"]


def test_tree_failure_records_name_the_source(xattr_dir):
    src = xattr_dir / "set"
    small_set(src, 3)
    (src / "b" / "broken.efsraw").write_bytes(efsfast.synthetic_raw(700, seed=3)[:-9])
    code, out, _ = run_cli("restore-tree", src, xattr_dir / "out", "--json")
    assert code == 1
    rec = json.loads(out)
    assert (rec["counts"]["done"], rec["counts"]["failed"]) == (5, 1)
    (f,) = rec["failures"]
    assert f["path"] == str(xattr_dir / "out" / "b" / "broken")
    assert f["source"] == str(src / "b" / "broken.efsraw")
    assert f["rule"] == "R8" and f["offset"] > 0 and f["kind"] == "format"
    assert not (xattr_dir / "out" / "b" / "broken").exists()


def test_tree_destination_that_cannot_be_written_prints_json(xattr_dir):
    src = xattr_dir / "set"
    small_set(src, 3)
    (xattr_dir / "FILE").write_bytes(b"in the way")
    for command, source in (("restore-tree", src), ("backup-tree", xattr_dir / "restored")):
        if command == "backup-tree":
            assert cli.main(["restore-tree", str(src), str(source), "--quiet"]) == 0
        code, out, err = run_cli(command, source, xattr_dir / "FILE" / "sub", "--json")
        assert code == 1 and err == ""
        rec = json.loads(out)
        assert rec["ok"] is False and rec["command"] == command
        (f,) = rec["failures"]
        assert f["path"].startswith(str(xattr_dir / "FILE")) and f["errno"] == 20
        assert "cannot create the folder" in f["error"]
        code, out, err = run_cli(command, source, xattr_dir / "FILE" / "sub")
        assert code == 1 and "cannot create the folder" in err and "FILE" in err
    assert (xattr_dir / "FILE").read_bytes() == b"in the way"


# ---- smaller findings ----

def test_bench_quick_reaches_the_benchmarks(monkeypatch):
    from efsfast.bench import run
    seen = []
    monkeypatch.setattr(run, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["bench", "--quick", "--out", "somewhere"]) == 0
    assert seen == [["--quick", "--out", "somewhere"]]
    code, _out, err = run_cli("bench", "--quick", "--help")
    assert code == 0 and "unrecognized" not in err


def test_existing_destination_says_use_overwrite(xattr_dir):
    raw = xattr_dir / "in.efsraw"
    raw.write_bytes(efsfast.synthetic_raw(100, seed=4))
    assert run_cli("restore", raw, xattr_dir / "f")[0] == 0
    code, out, err = run_cli("restore", raw, xattr_dir / "f")
    assert code == 2 and "--overwrite" in err and "overwrite=True" not in err
    assert str(xattr_dir / "f") in err
    code, out, err = run_cli("restore", raw, xattr_dir / "f", "--json")
    rec = json.loads(out)
    assert rec["failures"][0]["kind"] == "exists" and rec["failures"][0]["path"] == str(xattr_dir / "f")


def test_backup_into_an_existing_folder_is_like_cp(xattr_dir):
    raw = efsfast.synthetic_raw(100, seed=5)
    efsfast.restore(xattr_dir / "doc.txt", raw)
    (xattr_dir / "backups").mkdir()
    code, out, err = run_cli("backup", xattr_dir / "doc.txt", xattr_dir / "backups")
    assert code == 0, err
    assert str(xattr_dir / "backups" / "doc.txt.efsraw") in out
    assert (xattr_dir / "backups" / "doc.txt.efsraw").read_bytes() == raw
    assert listing(xattr_dir / "backups") == ["doc.txt.efsraw"]
    # and a second time it is an existing backup file, kept
    code, out, err = run_cli("backup", xattr_dir / "doc.txt", xattr_dir / "backups")
    assert code == 2 and "doc.txt.efsraw" in err and "--overwrite" in err


def test_missing_parent_folder_is_reported_against_the_destination(xattr_dir):
    efsfast.restore(xattr_dir / "f", efsfast.synthetic_raw(100, seed=6))
    out = xattr_dir / "no-such-folder" / "f.efsraw"
    code, _out, err = run_cli("backup", xattr_dir / "f", out)
    assert code == 1 and str(out) in err and ".tmp" not in err
    assert listing(xattr_dir) == ["f"]


@pytest.mark.parametrize("path", ["c", "python"])
def test_a_progress_callback_that_raises_keeps_the_work_done(path, xattr_dir):
    """restore_many (C batch path for buffers; Python path for a source
    with read()) and backup_many: the callback's error stops the job, and
    arrives with ``result`` counting exactly what is on disk, whole."""
    import io
    raws = [efsfast.synthetic_raw(100 + i, seed=i) for i in range(40)]
    calls = []

    def progress(files, _b, _t):
        calls.append(files)
        if len(calls) == 1:
            raise RuntimeError("the progress display broke")
    jobs = [(xattr_dir / f"f{i:02d}", r if path == "c" else io.BytesIO(r))
            for i, r in enumerate(raws)]
    with pytest.raises(RuntimeError, match="display broke") as ei:
        efsfast.restore_many(jobs, workers=1, progress=progress)
    result = ei.value.result
    names = listing(xattr_dir)
    assert result.files == len(names) >= 1
    for n in names:
        assert efsfast.backup(xattr_dir / n) == raws[int(n[1:])]
    assert result.files == sum(r is not None for r in result.results)
    # backup_many, same promise
    (xattr_dir / "b").mkdir()
    calls.clear()
    with pytest.raises(RuntimeError) as ei:
        efsfast.backup_many([(xattr_dir / n, xattr_dir / "b" / (n + ".efsraw")) for n in names],
                            workers=1, progress=progress)
    done = listing(xattr_dir / "b")
    assert ei.value.result.files == len(done) >= 1
    assert all(not n.endswith(".tmp") for n in done)


def test_progress_shows_scanning_and_keeps_mb_when_narrow(xattr_dir):
    src = xattr_dir / "set"
    small_set(src, 200)
    code, screen = run_in_pty(["restore-tree", str(src), str(xattr_dir / "wide")])
    assert code == 0, screen
    assert f"restore: scanning {src}" in screen and "MB" in screen
    # a 44-column terminal: the figures are there, the bar gives way
    code, screen = run_in_pty(["restore-tree", str(src), str(xattr_dir / "narrow")],
                              columns=44)
    assert code == 0, screen
    assert "202/202 files" in screen and "MB" in screen, screen


def test_failures_are_grouped_by_cause_wrapped_to_the_terminal(xattr_dir):
    src = xattr_dir / "set"
    small_set(src, 2)
    deep = src / ("d" * 100) / ("e" * 100)
    deep.mkdir(parents=True)
    (deep / "long.efsraw").write_bytes(b"garbage")
    (src / "short.efsraw").write_bytes(b"garbage")
    env = dict(os.environ, COLUMNS="80")
    code, out, _ = run_cli("restore-tree", src, xattr_dir / "out", env=env)
    assert code == 1 and "2 failed" in out
    lines = out.splitlines()
    # one paragraph for the one cause, wrapped to the terminal ...
    head = [ln for ln in lines if "items failed" in ln]
    assert len(head) == 1 and head[0].startswith("  2 items failed: not a valid raw stream")
    items = [ln for ln in lines if ln.startswith("    /")]
    assert all(len(ln) <= 80 for ln in lines if ln not in items), out
    # ... then each item whole on a line of its own, with the raw stream at fault
    long_path = str(xattr_dir / "out" / ("d" * 100) / ("e" * 100) / "long")
    assert f"    {long_path}  ({deep / 'long.efsraw'})" in items
    assert f"    {xattr_dir / 'out' / 'short'}  ({src / 'short.efsraw'})" in items
    # the summary comes last, after the failures
    summary = next(i for i, ln in enumerate(lines) if ln.startswith("restore-tree: "))
    assert summary > max(lines.index(ln) for ln in items)
