import contextlib
import hashlib
import os
import pathlib
import signal
import sys

import pytest

from efsfast import _core

# The CLI children the tests start and send Ctrl-C to inherit this process's
# SIGINT disposition across exec.  A runner started in the background
# (`.ci/run &`, nohup) has it ignored, and efsfast, like any Unix program,
# keeps ignoring it then (test_cli: test_sigint_ignored_at_start_stays_ignored
# sets that up on purpose).  The tests stand for a program started from a
# terminal's shell: SIGINT handled here, so a child gets the default action.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

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


# ---- a real S3 server (SeaweedFS) for the object-storage tests

S3_BUCKET = "efsfast-test"
_AWS_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
             "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
             "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
             "AWS_CONFIG_FILE")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """One SeaweedFS for the session (tests/s3_server.py), bucket S3_BUCKET
    made; skips only where the `weed` binary is not installed."""
    from s3_server import MISSING_REASON, SeaweedServer, find_weed
    if find_weed() is None:
        pytest.skip(MISSING_REASON)
    pytest.importorskip("obstore", reason="the S3 client library obstore is not installed "
                        "(pip install 'efsfast[s3]'; the test extra has it)")
    with SeaweedServer(str(tmp_path_factory.mktemp("seaweedfs"))) as server:
        server.make_bucket(S3_BUCKET)
        yield server


@pytest.fixture
def s3_url(s3_server, monkeypatch, request, tmp_path):
    """A fresh set URL in the session's bucket, with the environment set
    as AWS tools read it for the server (and nothing of the machine's own
    AWS settings left in it)."""
    import uuid
    for name in _AWS_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    # not this machine's ~/.aws (a test that wants a profile writes its own)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    return f"s3://{S3_BUCKET}/{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"


def use_s3_server(server, monkeypatch, tmp_path):
    """The environment set for ``server`` (again after a restart: new ports)."""
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))


@pytest.fixture
def own_s3_server(tmp_path, monkeypatch):
    """A SeaweedFS of the test's own (to stop and start), bucket S3_BUCKET
    made, the environment set for it; killed at the end."""
    from s3_server import MISSING_REASON, SeaweedServer, find_weed
    if find_weed() is None:
        pytest.skip(MISSING_REASON)
    pytest.importorskip("obstore", reason="the S3 client library obstore is not installed "
                        "(pip install 'efsfast[s3]'; the test extra has it)")
    (tmp_path / "weed").mkdir()
    server = SeaweedServer(str(tmp_path / "weed")).start()
    server.make_bucket(S3_BUCKET)
    use_s3_server(server, monkeypatch, tmp_path)
    try:
        yield server
    finally:
        server.stop(grace_s=0)
