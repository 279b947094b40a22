"""Build script: the C layers as one static library, compiled with warnings
on (EFSFAST_WERROR=1 turns them into errors, EFSFAST_SANITIZE=1 adds
AddressSanitizer/UBSan), and the Cython modules linked against it."""
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

C_DIR = os.path.join("src", "efsfast", "_c")
C_SOURCES = [os.path.join(C_DIR, name) for name in (
    "efs_parser.c", "efs_meta.c", "efs_writer.c", "efs_io.c", "efs_sector.c", "efs_sha256.c",
    "efs_probe.c", "efs_setmeta.c", "efs_manifest.c",
    *(("efs_win32.c",) if sys.platform == "win32" else (
        "efs_posix.c", "efs_posix_publish.c", "efs_posix_import.c", "efs_posix_window.c", "efs_posix_export.c",
        "efs_posix_dir.c", "efs_posix_backup.c", "efs_posix_streamexport.c",
        "efs_scratch.c")),
)]

if sys.platform == "win32" and "GCC" not in sys.version:
    c_flags = ["/W4"] + (["/WX"] if os.environ.get("EFSFAST_WERROR") else [])
    ext_flags = ["/W3"]
    link_flags = []
else:
    c_flags = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Wshadow",
               "-Wconversion", "-Wno-sign-conversion", "-fvisibility=hidden"]
    if os.environ.get("EFSFAST_WERROR"):
        c_flags.append("-Werror")
    ext_flags = ["-O2", "-Wall", "-Wno-unused-function"]
    link_flags = []
    if os.environ.get("EFSFAST_SANITIZE"):
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
               "-fno-sanitize-recover=undefined"]
        c_flags += san + ["-O1", "-g"]
        ext_flags += san + ["-g"]
        link_flags += san

LIBRARIES = [("efscore", {"sources": C_SOURCES, "cflags": c_flags, "include_dirs": [C_DIR]})]


def extension(name):
    return Extension(
        f"efsfast.{name}",
        [os.path.join("src", "efsfast", f"{name}.pyx")],
        include_dirs=[os.path.join("src", "efsfast"), C_DIR],
        extra_compile_args=ext_flags,
        extra_link_args=link_flags,
        libraries=["efscore"] + (["advapi32"] if sys.platform == "win32" else []),
    )


setup(
    libraries=LIBRARIES,
    ext_modules=cythonize(
        [extension("_codec"), extension("_core"), extension("_decrypt"),
         extension("_testhooks"), extension("_benchhooks")],   # tests and benchmarks only
        compiler_directives={"language_level": "3"},
        include_path=["src"],
    ),
)
