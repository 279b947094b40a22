"""BulkExport given a backup's plan as it is (plan=True): the folders its
backup files go into, listed as the jobs are read, are os.path.dirname's,
each run of files in one folder once (where the folder is not "/" and has
no doubled "/": there os.path.dirname answers for each file)."""
from __future__ import annotations

import os

import pytest

from efsfast import _core

pytestmark = pytest.mark.skipif(os.name != "posix", reason="BulkExport is the POSIX side's")


def _folders(dests):
    jobs = [(f"/nowhere/src{i}", d) for i, d in enumerate(dests)]
    batch = _core.BulkExport(jobs, _core.PosixBackend(), _core.CancelToken(),
                             capture_ntfs=False, overwrite=False, plan=True)
    return batch.folders


@pytest.mark.parametrize("dests, runs", [
    (["/set/a.efsraw", "/set/b.efsraw", "/set/d/c.efsraw", "/set/e.efsraw"], True),
    (["set/a.efsraw", "set/b.efsraw", "x/y/z.efsraw"], True),          # relative
    (["/s\u00e9t/a.efsraw", "/s\u00e9t/b.efsraw", "/s\udcff/c.efsraw"], True),  # not ASCII
    (["/set/ab/c.efsraw", "/set/a/c.efsraw", "/set/ab/d.efsraw"], True),  # a prefix of another
    (["/a.efsraw", "/b.efsraw", "//c.efsraw"], False),                  # below the root
    (["/s//a.efsraw", "/s//b.efsraw", "/s/b.efsraw", "/s/t//u/c.efsraw"], False),  # doubled "/"
])
def test_the_folders_are_dirnames_each_run_once(dests, runs):
    got = _folders(dests)
    assert set(got) == {os.path.dirname(d) for d in dests}
    if runs:
        want = []
        for d in dests:
            if not want or want[-1] != os.path.dirname(d):
                want.append(os.path.dirname(d))
        assert got == want


def test_a_folder_job_is_a_folder_and_the_flags_of_files_none():
    jobs = [("/nowhere/d", "/set/d.efsraw", {"directory": True}), ("/nowhere/f", "/set/f.efsraw")]
    batch = _core.BulkExport(jobs, _core.PosixBackend(), _core.CancelToken(),
                             capture_ntfs=False, overwrite=False, plan=True)
    assert batch.folders == ["/set"]
    batch.work()            # neither exists: each fails, named by its object
    assert [batch.take(i, j[0], j[1])[0] for i, j in enumerate(jobs)] == ["failed", "failed"]


def test_a_run_stops_at_items_an_earlier_run_took(xattr_dir):
    """take_run leaves each line in its item until join_lines (the manifest's
    thread) frees it, so a run taken after a gap must stop at the items a
    later run already took: none is taken, joined or written twice.  (bulk.py
    takes runs past a slow item, then the run from that item on.)"""
    import efsfast
    src, out = xattr_dir / "src", xattr_dir / "set"
    src.mkdir()
    out.mkdir()
    jobs = []
    for i in range(12):
        efsfast.restore(src / f"f{i:02d}", efsfast.synthetic_raw(100 + i, seed=i))
        jobs.append((str(src / f"f{i:02d}"), str(out / f"f{i:02d}.efsraw")))
    batch = _core.BulkExport(jobs, _core.PosixBackend(), _core.CancelToken(),
                             capture_ntfs=False, overwrite=False, lines="posix",
                             rel_prefix=str(src) + os.sep, plan=True)
    batch.work()                # every item through, in this thread
    results = [None] * len(jobs)
    made = {}

    def make(folder, size):
        return ("done", folder, size)
    assert batch.take_run(5, 9, results, made, make)[0] == 9       # a run past a gap
    j, nbytes = batch.take_run(0, len(jobs), results, made, make)
    assert j == 5 and nbytes > 0            # stops where the earlier run began
    assert batch.take_run(5, len(jobs), results, made, make)[0] == 5   # taken: no run
    assert batch.take_run(9, len(jobs), results, made, make)[0] == len(jobs)
    assert all(r is not None and r[0] == "done" for r in results)
    lines = batch.join_lines(0, 5) + batch.join_lines(5, 9) + batch.join_lines(9, len(jobs))
    paths = [line.split(b'"path":"')[1].split(b'"')[0] for line in lines.splitlines()]
    assert paths == [f"f{i:02d}".encode() for i in range(len(jobs))]
    with pytest.raises(ValueError, match="join_lines: item 5"):
        batch.join_lines(5, 9)              # joined (and freed) once only
    with pytest.raises(IndexError):
        batch.join_lines(0, len(jobs) + 1)
