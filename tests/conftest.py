import hashlib
import os
import pathlib

import pytest

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
    probe = os.path.join(path, ".xattr-probe")
    try:
        with open(probe, "wb"):
            pass
        os.setxattr(probe, "user.efsfast.probe", b"x" * 4096)
        return True
    except (OSError, AttributeError):
        return False
    finally:
        if os.path.exists(probe):
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


def listing(path) -> list:
    """Everything in a directory, temporaries included."""
    return sorted(os.listdir(path))
