"""Short coverage-guided fuzzing passes (libFuzzer with ASan/UBSan) over the
C parsers: the codec (harness tests/fuzz/fuzz_codec.c), restore-tree's
stream probe (tests/fuzz/fuzz_probe.c) and the manifest lines a backup's
workers make (tests/fuzz/fuzz_manifest.c).  EFSFAST_FUZZ_SECONDS sets the length
of each (default 20); tests/fuzz/run.sh runs longer passes by hand."""
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent


def _have_libfuzzer() -> bool:
    if shutil.which("clang") is None:
        return False
    r = subprocess.run(["clang", "-print-file-name=libclang_rt.fuzzer-x86_64.a"],
                       capture_output=True, text=True)
    path = r.stdout.strip()
    return bool(path) and os.path.isabs(path) and os.path.exists(path)


@pytest.mark.skipif(not _have_libfuzzer(),
                    reason="clang with libFuzzer is not installed (apt-get install clang "
                           "libclang-rt-14-dev)")
@pytest.mark.parametrize("harness", ["codec", "probe", "manifest"])
def test_libfuzzer_pass(tmp_path, harness):
    secs = os.environ.get("EFSFAST_FUZZ_SECONDS", "20")
    # the seeds are made by this Python, which has efsfast (not whatever is on PATH)
    env = dict(os.environ, FUZZ_WORKDIR=str(tmp_path), PYTHON=sys.executable)
    r = subprocess.run(["bash", str(HERE / "fuzz" / "run.sh"), secs, harness],
                       capture_output=True, text=True, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    m = re.search(r"stat::number_of_executed_units: (\d+)", out)
    assert m and int(m.group(1)) > 1000, out[-2000:]
    print(f"fuzz {harness}: {m.group(1)} executions in {secs} s, no crash")
