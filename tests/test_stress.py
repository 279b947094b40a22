"""Stress: 8 threads x 500 restores and backups of random sizes with random
buffer schedules, byte for byte; repeated rounds keep RSS and open file
descriptors stable (no leak)."""
import io
import os
import random
import threading

import efsfast
from efsfast.backends import PosixBackend

THREADS, PER_THREAD, ROUNDS = 8, 500, 3


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def one_round(root, round_no, streams):
    errors, done = [], [0]
    lock = threading.Lock()

    def worker(t):
        rng = random.Random(round_no * 1000 + t)
        try:
            for i in range(PER_THREAD):
                raw = rng.choice(streams)
                be = PosixBackend(buffer_size=rng.choice([1, 7, 512, 4096, 70000]),
                                  seed=rng.randrange(1, 1 << 30),
                                  min_size=1) if rng.random() < 0.5 else \
                    PosixBackend(buffer_size=rng.choice([511, 4096, 66048]))
                dest = os.path.join(root, f"t{t}-{i % 7}")
                src = raw if rng.random() < 0.7 else io.BytesIO(raw)
                efsfast.restore(dest, src, backend=be, overwrite=True)
                if efsfast.backup(dest, backend=be) != raw:
                    raise AssertionError(f"thread {t} item {i}: backup differs")
                with lock:
                    done[0] += 1
        except BaseException as exc:           # reported after the join
            errors.append(exc)

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[0]
    return done[0]


def test_stress_threads_no_leaks(xattr_dir):
    rng = random.Random(91)
    streams = [efsfast.synthetic_raw(rng.choice([0, 1, 511, 513, 4096, 70_000, 150_000]),
                                     named_streams={"s": rng.randrange(0, 3000)} if i % 3 == 0
                                     else None, seed=i) for i in range(24)]
    samples = []
    total = 0
    for r in range(ROUNDS):
        total += one_round(str(xattr_dir), r, streams)
        samples.append((rss_kib(), open_fds()))
    print(f"\nstress: {total} restores + {total} backups; (RSS KiB, fds) per round: {samples}")
    assert total == THREADS * PER_THREAD * ROUNDS
    # after the first round has warmed the allocators, nothing grows
    assert samples[-1][1] == samples[0][1]
    # (under AddressSanitizer, .ci/sanitize, freed memory waits in its
    # quarantine, up to 256 MiB, so RSS grows without a leak: 10.8 MiB from
    # round 2 to 3 there; the RSS bound is checked by the plain runs)
    if "libasan" not in os.environ.get("LD_PRELOAD", ""):
        assert samples[-1][0] - samples[1][0] < 8 * 1024
    assert not [n for n in os.listdir(xattr_dir) if n.endswith(".tmp")]
