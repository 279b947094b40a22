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


def _written(set_dir, listed):
    """The manifest of ``listed`` as a backup writes it, read back (its
    whole object lines in the C reader's rows)."""
    from efsfast.backupset.manifest import MANIFEST_NAME, ManifestWriter, read_manifest
    set_dir.mkdir()
    with open(set_dir / MANIFEST_NAME, "wb") as f:
        w = ManifestWriter(f, Header("set-1", "2026-01-01T00:00:00+00:00", "/src", "0", "posix"))
        for e in listed:
            w.add(e)
        w.finish()
    return read_manifest(set_dir / MANIFEST_NAME)


@pytest.mark.skipif(os.sep != "/", reason="the rows' plan is the POSIX one")
@pytest.mark.parametrize("dest", ["/out", "/out/", "out"])
def test_the_rows_plan_is_the_line_by_line_plan(tmp_path, dest):
    """From the manifest's C rows (no Entry per object): the same jobs,
    folders, failed items and parents, the encrypted folders' jobs first."""
    meta = {"source": "posix", "mode": 0o640, "atime_ns": 1, "mtime_ns": 2, "ctime_ns": 3}
    listed = [Entry("Docs", Kind.DIRECTORY, 10, SHA, 0, SHA, meta),
              Entry("Docs/a.txt", Kind.FILE, 20, SHA, 5, SHA, meta),
              Entry("Docs/deep/b.txt", Kind.FILE, 30, SHA, 6, SHA),
              Entry("Docs/deep", Kind.DIRECTORY, 11, SHA, 0, SHA),
              Entry("plain", Kind.PLAIN_DIRECTORY, meta=meta),
              Entry("plain/ü c.bin", Kind.FILE, 40, SHA, 7, SHA),
              Entry("gone.txt", Kind.FILE, failed="it could not be read")]
    m = _written(tmp_path / "set", listed)
    rows, each = tree.Plan([]), tree.Plan([])
    assert tree._plan_rows(rows, m, str(tmp_path / "set"), dest)
    tree._plan_each(each, m, dest, {"set-1": str(tmp_path / "set")})
    assert sorted(rows.jobs, key=str) == sorted(each.jobs, key=str)
    assert [j[0] for j in rows.jobs[:2]] == [os.path.join(dest, "Docs"),
                                             os.path.join(dest, "Docs", "deep")]
    assert rows.folders == each.folders and rows.folder_jobs == each.folder_jobs == 2
    assert [(f.dest, str(f.error)) for f in rows.failed] == \
        [(f.dest, str(f.error)) for f in each.failed]
    assert {os.path.normpath(p) for p in rows.parents} == \
        {os.path.normpath(os.path.dirname(j[0])) for j in each.jobs}


def test_the_rows_plan_leaves_a_set_with_references_to_the_entries(tmp_path):
    """An object kept in an earlier set (its line json's): the Entry plans."""
    m = _written(tmp_path / "set", [Entry("a", Kind.FILE, 20, SHA, 5, SHA),
                                    Entry("b", Kind.FILE, 20, SHA, 5, SHA, ref="set-0")])
    assert not tree._plan_rows(tree.Plan([]), m, str(tmp_path / "set"), "/out")
    assert m.table is not None      # (nothing made of the rows yet)
