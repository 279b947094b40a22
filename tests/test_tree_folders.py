"""Encrypted folders in restore-tree (issue 10, case 4): a folder that fails
takes what it holds with it ("parent folder failed"), never restored into a
plain folder; --skip-existing accepts an existing folder only with the
backup's $EFS; --overwrite applies a folder's $EFS in place."""
import json
import os
import pathlib

import pytest
from hypothesis import given, settings, strategies as st

import efsfast
from efsfast import cli, treewalk

from conftest import listing, needs_posix

PARENT_FAILED = "parent folder failed"


def _set(root, folder_users=1, corrupt_folder=False):
    """Docs/ (encrypted, with Sub/ inside), files in both, one file beside."""
    root.mkdir()
    folder = efsfast.synthetic_raw(directory=True, users=folder_users, seed=1)
    (root / "Docs.efsraw").write_bytes(folder[:-5] if corrupt_folder else folder)
    (root / "Docs").mkdir()
    (root / "Docs" / "a.txt.efsraw").write_bytes(efsfast.synthetic_raw(700, seed=2))
    (root / "Docs" / "Sub.efsraw").write_bytes(efsfast.synthetic_raw(directory=True, seed=3))
    (root / "Docs" / "Sub").mkdir()
    (root / "Docs" / "Sub" / "b.bin.efsraw").write_bytes(efsfast.synthetic_raw(9000, seed=4))
    (root / "top.txt.efsraw").write_bytes(efsfast.synthetic_raw(5, seed=5))
    return root


def _restore_json(capsys, *argv):
    code = cli.main(["restore-tree", *map(str, argv), "--json", "--quiet"])
    return code, json.loads(capsys.readouterr().out)


def _by_path(rec, dest):
    return {os.path.relpath(f["path"], dest): f for f in rec["failures"]}


def _check_blocked(rec, dest, cause_text):
    fails = _by_path(rec, dest)
    assert sorted(fails) == ["Docs", "Docs/Sub", "Docs/Sub/b.bin", "Docs/a.txt"]
    assert cause_text in fails["Docs"]["error"]
    for p in ("Docs/Sub", "Docs/Sub/b.bin", "Docs/a.txt"):
        assert PARENT_FAILED in fails[p]["error"] and str(dest / "Docs") in fails[p]["error"], p
        assert fails[p]["source"].endswith(p + ".efsraw")


@needs_posix
def test_folder_whose_efs_does_not_fit_on_ext4_blocks_its_files(tmp_path, capsys):
    """ext4 keeps a file's xattrs in one block: a folder with ten users' keys
    (a 6 KB $EFS) cannot be stored there.  Its files, whose own $EFS fits,
    used to be restored into a plain folder made for them."""
    from efsfast.volume import filesystem_type
    if filesystem_type(tmp_path) != "ext4":
        pytest.skip(f"{tmp_path} is not on ext4 here (the one-block xattr limit is ext4's)")
    src = _set(tmp_path / "set", folder_users=10)
    dest = tmp_path / "out"
    code, rec = _restore_json(capsys, src, dest)
    assert code == 1 and rec["counts"]["done"] == 1 and rec["counts"]["failed"] == 4
    _check_blocked(rec, dest, "does not fit in the room this file system gives")
    assert listing(dest) == ["top.txt"]                 # no plain Docs folder, no temporary


def test_damaged_folder_stream_blocks_its_files(xattr_dir, capsys):
    """A folder stream that does not parse fails with its rule, and what the
    folder holds fails with it, even though the stream's own headers no
    longer say it is a folder's."""
    src = _set(xattr_dir / "set", corrupt_folder=True)
    dest = xattr_dir / "out"
    code, rec = _restore_json(capsys, src, dest)
    assert code == 1 and rec["counts"]["done"] == 1
    fails = _by_path(rec, dest)
    assert fails["Docs"]["rule"] is not None
    _check_blocked(rec, dest, fails["Docs"]["rule"])
    assert listing(dest) == ["top.txt"]


def test_skip_existing_refuses_a_plain_folder(xattr_dir, capsys):
    """The second half of the story: a plain Docs folder is already there
    (an earlier run's leftovers).  --skip-existing must not accept it."""
    src = _set(xattr_dir / "set")
    dest = xattr_dir / "out"
    (dest / "Docs").mkdir(parents=True)
    (dest / "Docs" / "notes.txt").write_text("mine")
    code, rec = _restore_json(capsys, src, dest, "--skip-existing")
    assert code == 1 and rec["counts"]["done"] == 1
    fails = _by_path(rec, dest)
    assert "not encrypted as in the backup" in fails["Docs"]["error"]
    assert "--overwrite" in fails["Docs"]["error"]
    _check_blocked(rec, dest, "--overwrite")
    assert listing(dest / "Docs") == ["notes.txt"]
    assert sorted(listing(dest)) == ["Docs", "top.txt"]


def test_skip_existing_refuses_a_folder_with_another_efs(xattr_dir, capsys):
    src = _set(xattr_dir / "set")
    dest = xattr_dir / "out"
    dest.mkdir()
    efsfast.restore(dest / "Docs", efsfast.synthetic_raw(directory=True, seed=99),
                    directory=True)
    code, rec = _restore_json(capsys, src, dest, "--skip-existing")
    assert code == 1
    assert "another $EFS" in _by_path(rec, dest)["Docs"]["error"]
    _check_blocked(rec, dest, "--overwrite")


def test_skip_existing_accepts_the_backups_own_folder(xattr_dir, capsys):
    src = _set(xattr_dir / "set")
    dest = xattr_dir / "out"
    assert cli.main(["restore-tree", str(src), str(dest), "--quiet"]) == 0
    capsys.readouterr()
    (dest / "Docs" / "a.txt").unlink()
    code, rec = _restore_json(capsys, src, dest, "--skip-existing")
    assert code == 0 and rec["counts"]["done"] == 1 and rec["counts"]["failed"] == 0
    assert len(rec["skipped"]["existing"]) == 4


def _backed_up_again(tree_dir, tmp, capsys) -> dict:
    out = tmp / "again"
    assert cli.main(["backup-tree", str(tree_dir), str(out), "--quiet"]) == 0
    capsys.readouterr()
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*.efsraw")}


def test_overwrite_applies_a_folders_efs_in_place(xattr_dir, tmp_path, capsys):
    """restore-tree --overwrite over an existing tree used to fail '[Errno 39]
    rename: Directory not empty' for every encrypted folder.  Now the
    folder's $EFS and named streams are applied in place and what the folder
    holds stays."""
    src = _set(xattr_dir / "set")
    (src / "Docs.efsraw").write_bytes(efsfast.synthetic_raw(
        directory=True, named_streams={"meta": 40}, seed=1))
    dest = xattr_dir / "out"
    assert cli.main(["restore-tree", str(src), str(dest), "--quiet"]) == 0
    capsys.readouterr()
    (dest / "Docs" / "notes.txt").write_text("mine")
    code, rec = _restore_json(capsys, src, dest, "--overwrite")
    assert code == 0 and rec["counts"]["done"] == 5 and rec["counts"]["failed"] == 0
    assert (dest / "Docs" / "notes.txt").read_text() == "mine"
    want = {str(p.relative_to(src)): p.read_bytes() for p in src.rglob("*.efsraw")}
    assert _backed_up_again(dest, tmp_path, capsys) == want

    # a plain folder in the way gets the backup's $EFS and streams, and keeps its files
    plain = xattr_dir / "plain"
    (plain / "Docs" / "Sub").mkdir(parents=True)
    (plain / "Docs" / "notes.txt").write_text("mine")
    code, rec = _restore_json(capsys, src, plain, "--overwrite")
    assert code == 0 and rec["counts"]["done"] == 5
    assert (plain / "Docs" / "notes.txt").read_text() == "mine"
    assert _backed_up_again(plain, tmp_path / "2", capsys) == want


def test_overwrite_that_fails_leaves_the_folder_as_it_was(tmp_path, capsys):
    """On ext4 the backup's 6 KB folder $EFS does not fit: the named stream
    already set is put back, the old $EFS stays, the folder keeps its files,
    and what the backup has below it fails as "parent folder failed"."""
    from efsfast.volume import filesystem_type
    if filesystem_type(tmp_path) != "ext4":
        pytest.skip(f"{tmp_path} is not on ext4 here")
    src = _set(tmp_path / "set")
    (src / "Docs.efsraw").write_bytes(efsfast.synthetic_raw(
        directory=True, users=10, named_streams={"meta": 40}, seed=7))
    dest = tmp_path / "out"
    dest.mkdir()
    old = efsfast.synthetic_raw(directory=True, named_streams={"meta": 40}, seed=8)
    efsfast.restore(dest / "Docs", old, directory=True)
    (dest / "Docs" / "notes.txt").write_text("mine")
    code, rec = _restore_json(capsys, src, dest, "--overwrite")
    assert code == 1 and rec["counts"]["done"] == 1
    _check_blocked(rec, dest, "does not fit in the room this file system gives")
    assert efsfast.backup(dest / "Docs", directory=True) == old
    assert listing(dest / "Docs") == ["notes.txt"]


@given(st.lists(st.text(alphabet="/a.é\\", max_size=12), max_size=30))
@settings(max_examples=300, deadline=None)
def test_parent_folders_are_os_path_dirname(paths):
    """The tree jobs' parent folders, made in C on POSIX, are exactly
    os.path.dirname's (a leading "/", doubled and trailing separators, no
    separator at all), for str and path-like paths alike."""
    want = {os.path.dirname(p) for p in paths}
    assert treewalk.parent_folders(paths) == want
    # (sorted, as a plan gives them: runs in one folder, which C takes once)
    assert treewalk.parent_folders(sorted(paths)) == want
    runs = ["a/b", "a/c", "ab/c", "ab/d", "a/e", "a", "/x", "a//f", "a/bc/d", "a/b/d", "a/bc/e"]
    assert treewalk.parent_folders(runs) == {"a", "ab", "", "/", "a/bc", "a/b"}
    assert treewalk.parent_folders([pathlib.PurePosixPath(p) if p else p for p in paths]) == {
        os.path.dirname(os.fspath(pathlib.PurePosixPath(p))) if p else "" for p in paths}
    # (as jobs: each job's path at a position)
    assert treewalk.parent_folders([(None, p, {}) for p in paths], 1) == want


@given(st.lists(st.tuples(st.text(alphabet="/ab", max_size=6), st.integers(0, 2)), max_size=30),
       st.sets(st.text(alphabet="/ab", max_size=6), max_size=4), st.booleans())
@settings(max_examples=300, deadline=None)
def test_folders_among_are_the_jobs_whose_paths_are_folders(jobs, folders, long):
    """The positions of the jobs whose path is one of the folders, in order,
    for paths of every length (the C table takes lengths below 4096)."""
    if long:        # paths past the table's lengths, and a path-like
        jobs = [("/" * 5000 + p, k) for p, k in jobs] + [(pathlib.PurePosixPath("/a"), 0)]
        folders = {"/" * 5000 + f for f in folders} | {"/a"}
    want = [i for i, (p, _) in enumerate(jobs) if os.fspath(p) in folders]
    assert treewalk.folders_among(jobs, 0, folders) == want
