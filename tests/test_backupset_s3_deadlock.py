"""No combination of --workers, --jobs, --memory-mib and object sizes may
hang a command on an s3:// set (a real SeaweedFS, tests/s3_server.py).

Each command runs in a child process with small thresholds (objects above
1 MiB streamed, 8 or 16 MiB of memory, 8 MiB parts) and a deadline: a hang
ends the child with every thread's stack dumped (faulthandler), and the
test fails showing them, instead of blocking the suite."""
import io
import json
import subprocess
import sys

import pytest

from efsfast.backupset import read_manifest
from efsfast.backupset.manifest import PARTIAL_NAME
from efsfast.store import open_store

from conftest import needs_posix
from test_backupset_s3 import interrupted_backup, make_tree, streams

pytestmark = needs_posix

HANG_S = 60         # far above what these few MiB take, even on a busy machine
CHILD = """
import faulthandler, sys
faulthandler.dump_traceback_later({hang}, exit=True)   # a hang: stacks, then exit 1
from efsfast.backupset import s3sink
s3sink.MEMORY_OBJECT = {memory_object}
{main}
"""
RUN_CLI = "from efsfast import cli\nsys.exit(cli.main(sys.argv[1:]))"
# verify-set has no --workers (one checking thread per CPU): eight, called directly
VERIFY_8 = ("from efsfast.backupset import verify_store_set\n"
            "r = verify_store_set(sys.argv[1], workers=8, jobs=1, memory_limit=8 << 20)\n"
            "print(r.objects, [str(p) for p in r.problems])\n"
            "sys.exit(0 if r.objects == int(sys.argv[2]) and not r.problems else 1)")


def run_bounded(*argv, memory_object=1 << 20, main=RUN_CLI):
    """``efsfast ARGV`` (or ``main`` with ARGV) in a child process, objects
    above ``memory_object`` streamed; failing the test where it hung."""
    code = CHILD.format(hang=HANG_S, memory_object=memory_object, main=main)
    try:
        r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                           text=True, timeout=HANG_S + 30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"efsfast {' '.join(argv)} hung (killed after {HANG_S + 30} s)")
    assert "Timeout (" not in r.stderr, \
        f"efsfast {' '.join(argv)} hung; its threads:\n{r.stderr[-6000:]}"
    return r


# small objects (in memory, one PUT each) and streamed ones (multipart
# uploads, and larger than a part: read back by windows of ranged GETs)
SIZES = (600_000,) * 12 + (9 << 20,) * 4


def test_backup_with_more_workers_than_requests_does_not_hang(xattr_dir, s3_url):
    """--workers 8 over --jobs 1 and 8 MiB of memory (a streamed upload
    needs all of it): every worker holding an in-memory object waited for
    the one request thread, which a streamed upload held waiting for that
    memory.  Then the restore and the verify of the same set under the same
    adversarial limits (fetch batches and windows of ranged GETs against
    eight threads restoring or checking, one request thread)."""
    src = xattr_dir / "src"
    rels = make_tree(src, sizes=SIZES)
    want = streams(src, rels)
    limits = ("--jobs", "1", "--memory-mib", "8")
    r = run_bounded("backup-tree", str(src), s3_url, "--quiet", "--workers", "8", *limits)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = xattr_dir / "out"
    r = run_bounded("restore-tree", s3_url, str(out), "--quiet", "--workers", "8", *limits)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert streams(out, rels) == want
    r = run_bounded(s3_url, str(len(rels)), main=VERIFY_8)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def test_resume_reading_back_large_objects_on_many_workers_does_not_hang(
        xattr_dir, s3_url, monkeypatch):
    """--skip-existing reads each object the interrupted backup stored back
    (windows of ranged GETs, memory taken chunk by chunk): four workers
    doing so at once (objects of three 8 MiB chunks, two in flight each),
    with room for two chunks, each held one chunk and waited for a second."""
    src = xattr_dir / "src"
    rels = make_tree(src, sizes=(17 << 20,) * 4 + (100,))
    want = streams(src, rels)
    interrupted_backup(src, s3_url, monkeypatch, after=4)
    with open_store(s3_url) as st:
        m = read_manifest(io.BytesIO(bytes(st.read(PARTIAL_NAME))), partial=True)
    assert len(m.entries) == 4
    r = run_bounded("backup-tree", str(src), s3_url, "--skip-existing", "--json",
                    "--workers", "4", "--jobs", "2", "--memory-mib", "16",
                    memory_object=64 << 20)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert json.loads(r.stdout)["counts"]["skipped_existing"] == 4, r.stdout[-2000:]
    r = run_bounded("restore-tree", s3_url, str(xattr_dir / "out"), "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    assert streams(xattr_dir / "out", rels) == want
