"""The POSIX side's import window (efs_posix_window.c): the system buffers
offered to the import callback sit one after another in a window of about
1 MiB, and the ciphertext in them is written once the window is full.
Streams larger than the window, segments and headers that straddle its
edges, tiny and odd capacities: the file comes out byte for byte, in few
large writes, and a failure half-way leaves nothing."""
import errno
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import efsfast
from efsfast import EfsError
from efsfast.backends import PosixBackend

from conftest import listing, small_tmpfs
from ntfs_volume import Volume, needs_ntfs3g

WINDOW = 1 << 20        # efs_posix_internal.h IMPORT_WINDOW
GATHER_BELOW = WINDOW // 4
SEGMENT = 0x10200       # a full segment: 512-byte header + 64 KiB (spec 3.1)
WRITE = 2               # efs_backend.h EFS_FAULT_WRITE

BIG = efsfast.synthetic_raw(3 * WINDOW + 12_345, named_streams={"Zone.Identifier": 90}, seed=91)

# capacities that cut the stream at different places relative to the window's
# end and to the segment headers, one that is larger than the window, and
# seeded random schedules (tiny ones gather slices at the window's start)
SCHEDULES = {
    "default": {},
    "segment": {"buffer_size": SEGMENT},
    "segment-1": {"buffer_size": SEGMENT - 1},
    "4k": {"buffer_size": 4096},
    "odd": {"buffer_size": 100_003},
    "window+7": {"buffer_size": WINDOW + 7},
    "twice-window": {"buffer_size": 2 * WINDOW + 3},
    "random-large": {"buffer_size": 300_000, "min_size": 1, "seed": 5},
    "random-around-header": {"buffer_size": 700, "min_size": 300, "seed": 6},
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_streams_larger_than_the_window_come_out_whole(xattr_dir, name):
    be = PosixBackend(**SCHEDULES[name])
    efsfast.restore(xattr_dir / "f", BIG, backend=be)
    assert efsfast.backup(xattr_dir / "f") == BIG
    assert listing(xattr_dir) == ["f"]


@pytest.mark.parametrize("size", [WINDOW - 600, WINDOW - 512, WINDOW, WINDOW + 1,
                                  16 * 65536 - 2, 2 * WINDOW + 511])
@pytest.mark.parametrize("buffer_size", [65536, SEGMENT, 1 << 20])
def test_sizes_at_the_window_edge(xattr_dir, size, buffer_size):
    raw = efsfast.synthetic_raw(size, seed=size % 1000)
    efsfast.restore(xattr_dir / "f", raw, backend=PosixBackend(buffer_size=buffer_size))
    assert efsfast.backup(xattr_dir / "f") == raw


def test_tiny_capacities_many_slices(xattr_dir):
    """1..64-byte buffers: hundreds of slices per window, gathered."""
    raw = efsfast.synthetic_raw(300_000, named_streams={"s": 3000}, seed=92)
    be = PosixBackend(buffer_size=64, min_size=1, seed=7)
    efsfast.restore(xattr_dir / "f", raw, backend=be)
    assert efsfast.backup(xattr_dir / "f") == raw


def test_a_failed_write_after_the_first_window_leaves_nothing(xattr_dir):
    dest = xattr_dir / "f"
    dest.write_bytes(b"old contents")
    be = PosixBackend(_fault=(WRITE, errno.ENOSPC))
    with pytest.raises(EfsError) as ei:
        efsfast.restore(dest, BIG, backend=be, overwrite=True)
    assert ei.value.errno == errno.ENOSPC
    assert listing(xattr_dir) == ["f"] and dest.read_bytes() == b"old contents"


@pytest.fixture
def fs_2m5(tmp_path):
    """A real 2.5 MiB tmpfs: the disk fills after the first window's writes."""
    with small_tmpfs(tmp_path, "2560k") as mnt:
        yield mnt


def test_disk_full_mid_file_leaves_nothing(fs_2m5):
    with pytest.raises(EfsError) as ei:
        efsfast.restore(fs_2m5 / "big", BIG)
    assert ei.value.errno == errno.ENOSPC
    assert listing(fs_2m5) == []
    # what fits still restores there
    small = efsfast.synthetic_raw(WINDOW + 3, seed=93)
    efsfast.restore(fs_2m5 / "fits", small)
    assert efsfast.backup(fs_2m5 / "fits") == small


@needs_ntfs3g
def test_disk_full_mid_file_on_ntfs3g_leaves_nothing(tmp_path):
    vol = Volume(tmp_path, size=8 << 20)        # mkntfs leaves about 5 MiB free
    vol.mount()
    try:
        big = efsfast.synthetic_raw(12 * WINDOW, seed=94)
        with pytest.raises(EfsError) as ei:
            efsfast.restore(vol.mnt / "big", big)
        assert ei.value.errno == errno.ENOSPC, ei.value
        assert [n for n in os.listdir(vol.mnt) if not n.startswith("$")] == []
        efsfast.restore(vol.mnt / "fits", BIG)
        assert efsfast.backup(vol.mnt / "fits") == BIG
    finally:
        vol.unmount()


# ---- how many writes: counted with strace, where it is installed

def _writes(tmp_path, raw: bytes, backend_args: str) -> int:
    """write()/writev() calls of a restore of ``raw`` in a fresh process."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (apt-get install strace)")
    src = tmp_path / "in.efsraw"
    src.write_bytes(raw)
    dest = tmp_path / "out"
    script = textwrap.dedent(f"""
        import efsfast
        from efsfast.backends import PosixBackend
        efsfast.restore({str(dest)!r}, {str(src)!r}, backend=PosixBackend({backend_args}))
    """)
    log = tmp_path / "strace.log"
    r = subprocess.run(["strace", "-f", "-e", "trace=write,writev,pwrite64,pwritev",
                        "-o", str(log), sys.executable, "-c", script],
                       capture_output=True, text=True)
    if r.returncode != 0 and "ptrace" in r.stderr:
        pytest.skip(f"strace cannot trace here: {r.stderr.strip()[:200]}")
    assert r.returncode == 0, r.stderr
    assert efsfast.backup(dest) == raw
    calls = [ln for ln in log.read_text().splitlines()
             if "write" in ln and "resumed" not in ln and "+++" not in ln and "---" not in ln]
    return len(calls)


def test_a_large_stream_is_written_a_window_at_a_time(tmp_path):
    size = 8 * WINDOW
    n = _writes(tmp_path, efsfast.synthetic_raw(size, seed=95), "")
    # one write per window of stream (its segment headers make it a little
    # more than the ciphertext) and the last one; 64 KiB buffers written one
    # by one would be 129
    assert 1 <= n <= size // WINDOW + 2, n


def test_tiny_buffers_are_gathered_before_they_are_written(tmp_path):
    size = WINDOW
    n = _writes(tmp_path, efsfast.synthetic_raw(size, seed=96), "buffer_size=600, min_size=1, seed=3")
    assert 1 <= n <= size // GATHER_BELOW + 2, n


@needs_ntfs3g
def test_onto_ntfs3g_the_window_goes_in_large_requests(tmp_path):
    """On ntfs-3g the temporary is written with O_DIRECT: the kernel sends
    each window in WRITE requests of up to max_write (128 KiB) where the
    page cache sends one 4 KiB page per request (1,025 for 4 MiB); counted
    at the daemon."""
    from efsfast.bench.ntfs3g import daemon_pid, fuse_requests
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (apt-get install strace)")
    vol = Volume(tmp_path, size=32 << 20)
    vol.mount()
    try:
        size = 4 * WINDOW
        raw = efsfast.synthetic_raw(size, named_streams={"s": 100}, seed=97)
        src = tmp_path / "in.efsraw"
        src.write_bytes(raw)
        counts = fuse_requests([sys.executable, "-m", "efsfast", "restore", str(src),
                                 str(vol.mnt / "f")], daemon_pid(str(vol.image)))
        assert counts is not None, "strace could not attach to the ntfs-3g daemon"
        assert 0 < counts.get("WRITE", 0) <= size // (128 << 10) + 8, counts
        assert efsfast.backup(vol.mnt / "f") == raw
    finally:
        vol.unmount()
