"""decrypt-tree's plan of a set (crypto/tree.py): the one-search plan the
calling thread makes of a well-formed manifest is the line-by-line plan,
and a manifest that has failed items or a path leaving the destination is
planned (and named) line by line."""
import os

import pytest

from efsfast.backupset.manifest import Entry, Header, Kind, Manifest
from efsfast.crypto import tree

SHA = "0" * 64


def manifest(entries):
    return Manifest(Header("set-1", "2026-01-01T00:00:00+00:00", "/src", "0", "posix"),
                    entries, SHA)


def entries(ref="set-0"):
    return [Entry("Docs", Kind.DIRECTORY, 10, SHA),
            Entry("Docs/a.txt", Kind.FILE, 20, SHA),
            Entry("Docs/deep/b.txt", Kind.FILE, 30, SHA),
            Entry("plain", Kind.PLAIN_DIRECTORY),
            Entry("plain/c.bin", Kind.FILE, 40, SHA, ref=ref),
            Entry("top.txt", Kind.FILE, 50, SHA),
            Entry("gone.txt", Kind.FILE, failed="it could not be read")]


def both(m, dest):
    folders = {"set-1": "/sets/one", "set-0": "/sets/zero/"}
    fast, each = tree.Plan([]), tree.Plan([])
    ok = tree._plan_checked(fast, m, dest, folders)
    tree._plan_each(each, m, dest, folders)
    return ok, fast, each


@pytest.mark.skipif(os.sep != "/", reason="the one-search plan is the POSIX one")
@pytest.mark.parametrize("dest", ["/out", "/out/", "out"])
def test_the_one_search_plan_is_the_line_by_line_plan(dest):
    ok, fast, each = both(manifest(entries()), dest)
    assert ok
    assert fast.jobs == each.jobs and fast.folders == each.folders
    assert [(f.dest, str(f.error)) for f in fast.failed] == \
        [(f.dest, str(f.error)) for f in each.failed]
    assert fast.folder_jobs == each.folder_jobs == 1
    assert fast.jobs[3] == (os.path.join(dest, "plain", "c.bin"),
                            "/sets/zero/plain/c.bin.efsraw", {"expect": (40, SHA), "object": False})
    # the folders the files go into, as the jobs' own dirnames name them
    assert {os.path.normpath(p) for p in fast.parents} == \
        {os.path.normpath(os.path.dirname(j[0])) for j in each.jobs}


def test_a_line_with_nothing_to_check_goes_line_by_line():
    m = manifest(entries(ref=None) + [Entry("nohash.txt", Kind.FILE, 5, None)])
    ok, fast, each = both(m, "/out")
    assert not ok and fast.jobs == [] and fast.failed == []
    plan = tree.plan_set("/sets/one", "/out", m)    # (no refs: no other set looked for)
    assert [f.dest for f in plan.failed] == [os.path.join("/out", "gone.txt"),
                                             os.path.join("/out", "nohash.txt")]
    assert "no size and SHA-256" in str(plan.failed[1].error)


def test_a_path_leaving_the_destination_is_refused_either_way():
    m = manifest(entries(ref=None) + [Entry("Docs/../../etc/x", Kind.FILE, 5, SHA)])
    with pytest.raises(OSError, match="leaves the destination"):
        tree.plan_set("/sets/one", "/out", m)
