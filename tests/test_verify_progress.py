"""verify-set shows how far it is (a bar on a terminal, --quiet for none),
takes --workers, and stops at Ctrl-C without checking the rest: for a set
folder, a tar stream and a set in an object store."""
import os
import subprocess
import sys
import threading

import pytest

from efsfast import cli
from efsfast.backupset import storeread, verify as verify_mod
from efsfast.backupset.streamverify import verify_stream
from efsfast.backupset.verify import verify_set

from test_backupset_s3 import make_tree as make_s3_tree
from test_cli import small_set
from ttyrun import run_in_pty


@pytest.fixture
def folder_set(xattr_dir):
    """A folder set of 102 objects (100 files, 2 folders)."""
    src = xattr_dir / "restored"
    small_set(xattr_dir / "streams", 100)
    assert cli.main(["restore-tree", str(xattr_dir / "streams"), str(src), "--quiet"]) == 0
    out = xattr_dir / "set"
    assert cli.main(["backup-tree", str(src), str(out), "--quiet"]) == 0
    return out


def _listed(set_dir):
    m = verify_mod.read_manifest(os.path.join(set_dir, verify_mod.MANIFEST_NAME))
    return [e for e in m.entries if e.has_stream and not e.ref]


def test_progress_counts_each_object_in_order(folder_set, capsys):
    own = _listed(folder_set)
    calls = []
    r = verify_set(folder_set, workers=2, progress=lambda *a: calls.append(a))
    assert r.ok, r.problems
    assert [c[0] for c in calls] == list(range(1, len(own) + 1))
    assert {c[2] for c in calls} == {len(own)}
    assert calls[-1][1] == sum(e.raw_size for e in own) == r.bytes


def test_ctrl_c_checks_no_further_object(folder_set, monkeypatch):
    """Ctrl-C (here raised by the progress callback, as the signal would be
    in the calling thread) ends the check once the objects under way are
    done: the others are never read."""
    real = verify_mod.check_object
    read = []
    lock = threading.Lock()

    def check_object(path, e, mode):
        with lock:
            read.append(path)
        return real(path, e, mode)
    monkeypatch.setattr(verify_mod, "check_object", check_object)

    def progress(files, nbytes, total):
        if files == 3:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        verify_set(folder_set, workers=1, progress=progress)
    # one thread: at most the object under way when the third was reported
    assert 3 <= len(read) <= 4, len(read)


def test_a_terminal_shows_the_bar_then_the_summary(folder_set):
    code, screen = run_in_pty(["verify-set", str(folder_set), "--workers", "2"])
    assert code == 0, screen
    bar = screen.rindex("102/102 files")
    summary = screen.rindex("verify-set ")
    assert bar < summary and "OK, 102 objects" in screen[summary:], screen
    code, screen = run_in_pty(["verify-set", str(folder_set), "--quiet"])
    assert code == 0 and "files" not in screen and "OK, 102 objects" in screen, screen


def test_a_tar_stream_reports_each_member(folder_set, xattr_dir):
    """A stream's total is unknown until its manifest has come (0 until then;
    efsfast writes the manifest last)."""
    stream = xattr_dir / "set.tar"
    with open(stream, "wb") as f:
        subprocess.run([sys.executable, "-m", "efsfast", "backup-tree",
                        str(xattr_dir / "restored"), "-", "--quiet"], stdout=f, check=True)
    calls = []
    with open(stream, "rb") as f:
        r = verify_stream(f, progress=lambda *a: calls.append(a))
    assert r.ok, r.problems
    assert [c[0] for c in calls] == list(range(1, r.objects + 1))
    assert {c[2] for c in calls} == {0}
    assert calls[-1][1] == r.bytes


def test_a_set_in_a_bucket_reports_each_object(xattr_dir, s3_url, capsys):
    make_s3_tree(xattr_dir / "src")
    assert cli.main(["backup-tree", str(xattr_dir / "src"), s3_url, "--quiet"]) == 0
    calls = []
    r = storeread.verify_store_set(s3_url, progress=lambda *a: calls.append(a), workers=2)
    assert r.ok and r.objects == 5, r.problems
    assert sorted(c[0] for c in calls) == list(range(1, 6)) == [c[0] for c in calls]
    assert {c[2] for c in calls} == {5} and calls[-1][1] == r.bytes
    capsys.readouterr()
    assert cli.main(["verify-set", s3_url, "--quiet", "--workers", "1"]) == 0
    assert "OK, 5 objects" in capsys.readouterr().out
