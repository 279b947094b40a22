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

