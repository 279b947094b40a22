"""The win32 system side compiles and links with the mingw cross compiler,
warnings as errors, and imports the four advapi32 raw-EFS functions.  (Wine's
versions are stubs that return 120, so the behaviour is not run here.)"""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
C_DIR = ROOT / "src" / "efsfast" / "_c"
CC = "x86_64-w64-mingw32-gcc"
OBJDUMP = "x86_64-w64-mingw32-objdump"
FLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Wconversion",
         "-Wno-sign-conversion", "-Werror"]

pytestmark = pytest.mark.skipif(
    shutil.which(CC) is None,
    reason=f"{CC} is not installed (apt-get install gcc-mingw-w64-x86-64)")


def test_win32_side_compiles_and_links(tmp_path):
    exe = tmp_path / "smoke.exe"
    sources = [C_DIR / n for n in ("efs_parser.c", "efs_meta.c", "efs_writer.c", "efs_io.c",
                                   "efs_win32.c", "efs_posix.c", "efs_posix_publish.c",
                                   "efs_posix_import.c", "efs_posix_window.c", "efs_posix_export.c",
                                   "efs_posix_dir.c", "efs_scratch.c")]
    subprocess.run([CC, "-municode", *FLAGS, f"-I{C_DIR}", *map(str, sources),
                    str(ROOT / "tests" / "win32" / "smoke.c"), "-ladvapi32", "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    imports = subprocess.run([OBJDUMP, "-p", str(exe)], check=True, capture_output=True,
                             text=True).stdout
    for name in ("OpenEncryptedFileRawW", "ReadEncryptedFileRaw", "WriteEncryptedFileRaw",
                 "CloseEncryptedFileRaw", "AdjustTokenPrivileges"):
        assert name in imports, name
