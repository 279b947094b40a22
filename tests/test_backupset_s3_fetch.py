"""What a restore from an S3 bucket (a real SeaweedFS) fetches and holds:
it hands the client library's buffers to the C import path as they are;
it holds no more than --memory-mib of fetched objects at once (16 MiB
objects at 16 requests in flight, the peak RSS of the process); with
--skip-existing it fetches only the objects it restores."""
import os

import pytest

import efsfast
from efsfast import cli

from conftest import needs_posix
from peak_rss import MIB, make_big_tree, peak_rss_mib

pytestmark = needs_posix
# what a restore process may hold beyond --memory-mib of fetched objects,
# over the baseline (the same command restoring a one-object set): the
# import path's system buffers, the client library's runtime, an object
# passing through the library as its response is collected.  Measured on
# 8 x 16 MiB at --jobs 16 --memory-mib 64: 38-55 MiB over the baseline in
# all (below the limit itself); with --memory-mib 512, 138 MiB
SLACK_MIB = 32


def test_fetched_buffers_go_to_the_import_path_uncopied(xattr_dir, s3_url, monkeypatch):
    from efsfast import tree
    from efsfast.backupset import storeread
    make_big_tree(xattr_dir / "src", 2, size=100_000)
    assert cli.main(["backup-tree", str(xattr_dir / "src"), s3_url, "--quiet"]) == 0
    seen = []
    real = tree.restore_planned

    def spy(dirs, files, *a, **kw):
        seen.extend(type(job[1]) for job in files)
        return real(dirs, files, *a, **kw)
    monkeypatch.setattr(storeread.tree, "restore_planned", spy)
    assert cli.main(["restore-tree", s3_url, str(xattr_dir / "out"), "--quiet"]) == 0
    # the library's own buffer object (obstore.Bytes), not bytes made from it:
    # the import path takes it through the buffer protocol, its one copy
    # being the one into the system's buffer
    assert len(seen) == 2 and all(t is not bytes and t is not bytearray for t in seen)
    assert all(t.__module__.split(".")[0] == "obstore" for t in seen), seen


@pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                    reason="the peak RSS of a process is read from /proc/self/status (Linux)")
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="under AddressSanitizer a process's RSS holds the sanitizer's "
                           "shadow memory and freed-memory quarantine, not only its buffers")
def test_restore_memory_stays_within_the_limit(xattr_dir, s3_url):
    src = xattr_dir / "src"
    make_big_tree(src, 8)
    assert cli.main(["backup-tree", str(src), s3_url, "--quiet"]) == 0
    make_big_tree(xattr_dir / "one", 1, size=1000)
    assert cli.main(["backup-tree", str(xattr_dir / "one"), s3_url + "-one", "--quiet"]) == 0
    opts = ["--jobs", "16", "--no-sync", "--quiet"]
    base = peak_rss_mib(["restore-tree", s3_url + "-one", str(xattr_dir / "r0"), *opts,
                         "--memory-mib", "64"])
    bounded = peak_rss_mib(["restore-tree", s3_url, str(xattr_dir / "r1"), *opts,
                            "--memory-mib", "64"]) - base
    assert bounded < 64 + SLACK_MIB, (base, bounded)
    # the bound is what holds it: with room for every object the same restore
    # holds far more (all 8 fetched at once)
    free = peak_rss_mib(["restore-tree", s3_url, str(xattr_dir / "r2"), *opts,
                         "--memory-mib", "512"]) - base
    assert free > bounded + 32, (base, bounded, free)
    for r in ("r1", "r2"):
        assert sorted(os.listdir(xattr_dir / r)) == sorted(os.listdir(src))


def test_skip_existing_fetches_only_what_it_restores(xattr_dir, s3_url, monkeypatch):
    from efsfast.store.s3 import S3Store
    src = xattr_dir / "src"
    make_big_tree(src, 6, size=20_000)
    assert cli.main(["backup-tree", str(src), s3_url, "--quiet"]) == 0
    out = xattr_dir / "out"
    assert cli.main(["restore-tree", s3_url, str(out), "--quiet"]) == 0
    for name in ("f1.bin", "f4.bin"):
        os.unlink(out / name)
    fetched = []
    real = S3Store.submit_read

    def counting(self, key, *a, **kw):
        fetched.append(key)
        return real(self, key, *a, **kw)
    monkeypatch.setattr(S3Store, "submit_read", counting)
    assert cli.main(["restore-tree", s3_url, str(out), "--skip-existing", "--quiet"]) == 0
    objects = [k for k in fetched if k.endswith(".efsraw")]
    assert sorted(objects) == ["f1.bin.efsraw", "f4.bin.efsraw"]
    assert sorted(os.listdir(out)) == sorted(os.listdir(src))
    assert all(efsfast.backup(out / n) == efsfast.backup(src / n) for n in os.listdir(src))


def test_batches_bounded_by_bytes_and_by_count():
    """A set of small objects within the memory limit is still several
    batches (restoring one overlaps fetching the next); bytes bound them too."""
    from efsfast.backupset import storeread
    from efsfast.backupset.manifest import Entry, Kind

    def job(i, size):
        return storeread._Job(f"t{i}", Entry(path=f"f{i}", kind=Kind.FILE, raw_size=size),
                              "folder", i)
    small = [job(i, 1000) for i in range(600)]
    sizes = [len(b) for b in storeread._batches(small, 1 << 30)]
    assert sizes == [storeread.BATCH_OBJECTS, storeread.BATCH_OBJECTS,
                     600 - 2 * storeread.BATCH_OBJECTS]
    big = [job(i, 3 * MIB) for i in range(5)]
    assert [len(b) for b in storeread._batches(big, 7 * MIB)] == [2, 2, 1]
    assert [len(b) for b in storeread._batches([job(0, 9 * MIB)], 7 * MIB)] == [1]
