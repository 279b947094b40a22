"""A real NTFS volume for tests: an image made by mkntfs, mounted with
ntfs-3g over FUSE (with or without ``-o efs_raw``), checked unmounted with
ntfsprogs.  Tests that use it skip, saying what is missing, where the tools,
root or /dev/fuse are not there."""
import os
import shutil
import subprocess
import time

import pytest

TOOLS = ("mkntfs", "ntfs-3g", "ntfsinfo", "ntfscat")


def why_not() -> str:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"ntfs-3g tools missing: {', '.join(missing)} (apt-get install ntfs-3g)"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "mounting ntfs-3g over FUSE needs root here"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (no FUSE in this kernel or container)"
    return ""


needs_ntfs3g = pytest.mark.skipif(bool(why_not()), reason=why_not() or "ok")


def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


class Volume:
    def __init__(self, tmp_path, size=64 << 20):
        self.image = tmp_path / "ntfs.img"
        self.mnt = tmp_path / "mnt"
        self.mnt.mkdir()
        with open(self.image, "wb") as f:
            f.truncate(size)
        run("mkntfs", "-F", "-q", "-Q", str(self.image))
        self.mounted = False

    def mount(self, efs_raw=True):
        run("ntfs-3g", *(("-o", "efs_raw") if efs_raw else ()), str(self.image), str(self.mnt))
        self.mounted = True

    def unmount(self):
        if self.mounted:
            for _ in range(50):
                if subprocess.run(["umount", str(self.mnt)], capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)     # the FUSE daemon may still be closing a file
            else:
                run("umount", "-l", str(self.mnt))
            self.mounted = False

    def info(self, path):
        return run("ntfsinfo", "-F", path, str(self.image), text=True).stdout

    def attribute(self, path, attr_type):
        return run("ntfscat", "-a", hex(attr_type), str(self.image), path).stdout

    def names(self, rel=""):
        """What is in a folder of the volume, NTFS system files left out."""
        return sorted(n for n in os.listdir(self.mnt / rel) if not n.startswith("$"))


def mounted_volume(tmp_path, efs_raw=True):
    v = Volume(tmp_path)
    v.mount(efs_raw)
    return v
