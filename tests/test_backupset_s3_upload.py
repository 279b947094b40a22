"""What a backup into an S3 bucket (a real SeaweedFS) holds: no more than
--memory-mib of exported objects at once, 16 MiB objects at 16 requests in
flight, measured as the peak RSS of the process over the same command
backing up one small object.  Before exports went into memory of their own
(efsfast.ExportBuffer) the process held 163 MiB over that baseline at
--memory-mib 64: each object briefly twice (the export, its bytes) and the
freed 16 MiB blocks kept by malloc's arenas."""
import os

import pytest

from efsfast import cli

from conftest import needs_posix
from peak_rss import make_big_tree, peak_rss_mib

pytestmark = [
    needs_posix,
    pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                       reason="the peak RSS of a process is read from /proc/self/status "
                              "(Linux)"),
    pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                       reason="under AddressSanitizer a process's RSS holds the sanitizer's "
                              "shadow memory and freed-memory quarantine, not only its "
                              "buffers"),
]
# beyond --memory-mib of exported objects, over the one-object baseline: the
# export's system buffers, the client library's request buffers.  Measured:
# 12 x 16 MiB at --jobs 16 --memory-mib 64, 50 MiB in all (limit included)
SLACK_MIB = 32


def test_backup_memory_stays_within_the_limit(xattr_dir, s3_url):
    src = xattr_dir / "src"
    make_big_tree(src, 12)
    make_big_tree(xattr_dir / "one", 1, size=1000)
    assert cli.main(["backup-tree", str(xattr_dir / "one"), s3_url + "-one", "--quiet"]) == 0
    opts = ["--jobs", "16", "--quiet"]
    base = peak_rss_mib(["backup-tree", str(xattr_dir / "one"), s3_url + "-one2", *opts,
                         "--memory-mib", "64"])
    bounded = peak_rss_mib(["backup-tree", str(src), s3_url, *opts,
                            "--memory-mib", "64"]) - base
    assert bounded < 64 + SLACK_MIB, (base, bounded)
    # the bound is what holds it: with room for all of them the same backup
    # holds every object in flight at once (12 x 16 MiB)
    free = peak_rss_mib(["backup-tree", str(src), s3_url + "-free", *opts,
                         "--memory-mib", "512"]) - base
    assert free > bounded + 64, (base, bounded, free)
    assert cli.main(["verify-set", s3_url]) == 0
