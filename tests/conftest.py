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
