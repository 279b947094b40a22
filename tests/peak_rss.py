"""The peak RSS of one efsfast process, and trees of large objects to make
it move (the memory-bound tests of S3 backups and restores)."""
import hashlib
import subprocess
import sys

import efsfast

MIB = 1 << 20
OBJECT = 16 * MIB


def make_big_tree(root, n, size=OBJECT):
    meta = efsfast.synthetic_metadata(seed=1)
    r = (size + 511) & ~511
    root.mkdir()
    for i in range(n):
        block = hashlib.sha256(str(i).encode()).digest() * (r // 32)
        efsfast.restore(root / f"f{i}.bin", efsfast.build_raw(
            meta, [efsfast.DataStream("::$DATA", size, block[:r])]))


# the process reports its own high-water mark as it exits: wait4's
# ru_maxrss would count the pytest process it was forked from (the
# kernel carries the pre-exec memory's peak over into the new program)
REPORTING = ("import atexit, sys\n"
             "def hwm():\n"
             "    for line in open('/proc/self/status'):\n"
             "        if line.startswith('VmHWM:'):\n"
             "            sys.stderr.write('HWM ' + line.split()[1] + '\\n')\n"
             "atexit.register(hwm)\n"
             "from efsfast.cli import main\n"
             "sys.exit(main(sys.argv[1:]))\n")


def peak_rss_mib(argv):
    """Peak RSS (MiB) of one efsfast process; it must succeed."""
    r = subprocess.run([sys.executable, "-c", REPORTING, *argv], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    kib = [int(line.split()[1]) for line in r.stderr.splitlines() if line.startswith("HWM ")]
    assert len(kib) == 1, r.stderr[-2000:]
    return kib[0] / 1024
