import contextlib
import hashlib
import os
import pathlib
import sys

import pytest

from efsfast import _core

SHARED = pathlib.Path(os.environ.get("EFSFAST_SHARED",
                                     pathlib.Path(__file__).resolve().parents[2] / "shared"))
SAMPLE = SHARED / "spec" / "samples" / "petitpotam-v2-test-py.efsraw.bin"
SAMPLE_SHA256 = "24e400e7a6d2e3bbeb705fc724c6cb7abece29b7b953bbcb030d619b8de9bbd4"


def load_sample() -> bytes:
    if not SAMPLE.is_file():
        pytest.skip(f"the Windows-made sample is not at {SAMPLE} "
                    "(needs ../shared beside the checkout, or EFSFAST_SHARED)")
    data = SAMPLE.read_bytes()
    assert hashlib.sha256(data).hexdigest() == SAMPLE_SHA256
    return data


@pytest.fixture(scope="session")
def sample() -> bytes:
    return load_sample()


def _supports_user_xattrs(path) -> bool:
    import tempfile
    try:
        # a name of its own: test runs side by side share /dev/shm
        fd, probe = tempfile.mkstemp(prefix=".xattr-probe-", dir=path)
    except OSError:
        return False
    os.close(fd)
    try:
        os.setxattr(probe, "user.efsfast.probe", b"x" * 4096)
        return True
    except (OSError, AttributeError):
        return False
    finally:
        os.unlink(probe)


@pytest.fixture
def xattr_dir(tmp_path):
    """A directory on a file system with room for large user xattrs (tmpfs):
    named streams and a large $EFS are xattrs in the efs_raw layout."""
    import shutil
    import tempfile
    if not hasattr(os, "setxattr"):
        pytest.skip("this platform has no os.setxattr (the POSIX system side needs xattrs)")
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    if base is None or not _supports_user_xattrs(base):
        pytest.skip("no tmpfs with user xattrs at /dev/shm (Linux >= 6.6 has them)")
    d = tempfile.mkdtemp(prefix="efsfast-test-", dir=base)
    try:
        yield pathlib.Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _as_root(tool: str, what: str) -> None:
    import shutil
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which(tool) is None:
        pytest.skip(f"{what} needs root and {tool}")


@contextlib.contextmanager
def _mounted(mnt, what: str, *commands):
    """Run ``commands`` (the last one mounts ``mnt``), skipping the test,
    with what the system said, where one fails; unmounted afterwards."""
    import subprocess
    mnt.mkdir()
    for cmd in commands:
        r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot make {what} here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@contextlib.contextmanager
def small_tmpfs(tmp_path, size: str):
    """A real tmpfs of ``size`` (mount's -o size=) under tmp_path: disk full
    for real.  Skips where it cannot be mounted (needs root)."""
    _as_root("mount", "mounting a small tmpfs")
    mnt = tmp_path / f"tmpfs-{size}"
    with _mounted(mnt, "a tmpfs", ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt]):
        yield mnt


@contextlib.contextmanager
def small_ext4(tmp_path, size: int):
    """A real ext4 file system of ``size`` bytes (an image made by mkfs.ext4,
    mounted through a loop device) under tmp_path.  Skips where it cannot be
    made or mounted (needs root, mkfs.ext4 and loop devices)."""
    _as_root("mkfs.ext4", "an ext4 image")
    image, mnt = tmp_path / "ext4.img", tmp_path / "ext4"
    with open(image, "wb") as f:
        f.truncate(size)
    with _mounted(mnt, "an ext4 image", ["mkfs.ext4", "-q", "-F", image],
                  ["mount", "-o", "loop", image, mnt]):
        yield mnt


def listing(path) -> list:
    """Everything in a directory, temporaries included."""
    return sorted(os.listdir(path))


def posix_backend(param_id: str, **options):
    """A pytest.param holding a PosixBackend; on Windows, where the POSIX
    system side is not built, one that skips and says so (constructing the
    backend at collection time would stop the whole module from loading)."""
    if not _core.HAVE_POSIX:
        return pytest.param(None, id=param_id, marks=pytest.mark.skip(
            reason="the POSIX system side is not built on Windows"))
    from efsfast.backends import PosixBackend
    return pytest.param(PosixBackend(**options), id=param_id)


def under_wine() -> bool:
    """Windows code running under Wine (ntdll exports wine_get_version)."""
    if sys.platform != "win32":
        return False
    import ctypes
    return hasattr(ctypes.WinDLL("ntdll"), "wine_get_version")


WINE_STUBS = ("Wine's advapi32 raw-EFS functions are stubs (ERROR_CALL_NOT_IMPLEMENTED); "
              "this runs through the advapi32 test double in test_win32_double.py")
needs_posix = pytest.mark.skipif(not _core.HAVE_POSIX,
                                 reason="uses the POSIX system side, which is not built on Windows")
