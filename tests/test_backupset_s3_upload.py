"""What a backup into an S3 bucket (a real SeaweedFS) holds: no more than
--memory-mib of exported objects at once (16 MiB objects at 16 requests in
flight, the peak RSS of the process against a one-object backup)."""
import os

import pytest

from efsfast import cli

from conftest import needs_posix
from test_backupset_s3_fetch import MIB, make_big_tree, peak_rss_mib

pytestmark = needs_posix


@pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                    reason="the peak RSS of a process is read from /proc/self/status (Linux)")
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="under AddressSanitizer a process's RSS holds the sanitizer's "
                           "shadow memory and freed-memory quarantine, not only its buffers")
def test_backup_memory_stays_within_the_limit(xattr_dir, s3_url):
    src = xattr_dir / "src"
    make_big_tree(src, 12)
    make_big_tree(xattr_dir / "one", 1, size=1000)
    opts = ["--jobs", "16", "--quiet"]
    base = peak_rss_mib(["backup-tree", str(xattr_dir / "one"), s3_url + "-one", *opts,
                         "--memory-mib", "64"])
    bounded = peak_rss_mib(["backup-tree", str(src), s3_url, *opts, "--memory-mib", "64"]) - base
    free = peak_rss_mib(["backup-tree", str(src), s3_url + "-free", *opts,
                         "--memory-mib", "512"]) - base
    print("RSS over base", base, bounded, free)
    assert bounded < 64 + 32, (base, bounded)
    assert free > bounded + 32, (base, bounded, free)
