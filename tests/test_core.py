"""The hot path: every source kind, the C path and the Python fallback, the
failure trio, buffer lifetime, threads, cancellation, pywin32 compatibility."""
import dataclasses
import hashlib
import io
import mmap
import os
import random
import threading

import pytest

import efsfast
from efsfast import EfsError, RawFormatError, _core, _testhooks
from efsfast.backends import PosixBackend

from conftest import listing, needs_posix, posix_backend

RAW = efsfast.synthetic_raw(150_000, named_streams={"alt": 700}, seed=21)


class ReadOnly:
    """Has read() but no readinto()."""
    def __init__(self, data):
        self.f = io.BytesIO(data)

    def read(self, n):
        return self.f.read(n)


def chunks(data, seed):
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(data):
        n = rng.choice([1, 3, 100, 5000, 70000, 200000])
        out.append(data[i:i + n])
        i += n
    return out


def pywin32_callback(data_source):
    f = io.BytesIO(data_source)

    def import_cb(data, context, length):
        chunk = f.read(length)
        data[:len(chunk)] = chunk
        return 0, len(chunk)
    return import_cb


def make_source(kind, data, tmp_path):
    if kind == "bytes":
        return data
    if kind == "bytearray":
        return bytearray(data)
    if kind == "memoryview":
        return memoryview(data)
    if kind == "noncontiguous":
        doubled = bytearray(2 * len(data))
        doubled[::2] = data
        return memoryview(doubled)[::2]
    if kind == "numpy":
        np = pytest.importorskip("numpy")
        return np.frombuffer(data, dtype=np.uint8).copy()
    if kind == "mmap":
        p = tmp_path / "src.mm"
        p.write_bytes(data)
        with open(p, "rb") as f:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if kind == "path":
        p = tmp_path / "src.efsraw"
        p.write_bytes(data)
        return p
    if kind == "fd":
        p = tmp_path / "src.efsraw"
        p.write_bytes(data)
        return os.open(p, os.O_RDONLY)
    if kind == "readinto":
        return io.BytesIO(data)
    if kind == "read":
        return ReadOnly(data)
    if kind == "chunks":
        return chunks(data, 5)
    if kind == "generator":
        return (c for c in chunks(data, 6))
    if kind == "pywin32":
        return pywin32_callback(data)
    raise AssertionError(kind)


C_PATH = ["bytes", "bytearray", "memoryview", "noncontiguous", "numpy", "mmap", "path", "fd"]
FALLBACK = ["readinto", "read", "chunks", "generator", "pywin32"]
SOURCES = ([pytest.param(k, id=f"c-{k}") for k in C_PATH] +
           [pytest.param(k, id=f"fallback-{k}") for k in FALLBACK])
SCHEDULES = [posix_backend(f"random{s}", buffer_size=70000, seed=s) for s in (3, 4)] + [
    posix_backend("buf1", buffer_size=1), posix_backend("buf4096", buffer_size=4096)]


@pytest.mark.parametrize("backend", SCHEDULES)
@pytest.mark.parametrize("kind", SOURCES)
def test_every_source_restores_identically(xattr_dir, tmp_path, kind, backend):
    data = RAW if backend.__repr__().find("buffer_size=1,") < 0 else efsfast.synthetic_raw(3000, seed=2)
    src = make_source(kind, data, tmp_path)
    try:
        r = efsfast.restore(xattr_dir / "f", src, backend=backend)
    finally:
        if kind == "fd":
            os.close(src)
    assert r.bytes == len(data) and r.calls >= 2
    assert efsfast.backup(xattr_dir / "f") == data
    assert listing(xattr_dir) == ["f"]


# ---- the failure trio and friends: the right exception, no file left ----

class Boom(Exception):
    pass


class FailingReader:
    def __init__(self, data, fail_at, how):
        self.f = io.BytesIO(data)
        self.calls = 0
        self.fail_at = fail_at
        self.how = how
        self.kept = None

    def readinto(self, view):
        self.calls += 1
        if self.calls == self.fail_at:
            if self.how == "raise":
                raise Boom(f"call {self.calls}")
            if self.how == "wrong-type":
                return "12"
            if self.how == "too-many":
                return len(view) + 1
            if self.how == "negative":
                return -1
            if self.how == "none":
                return None
            if self.how == "base-exception":
                raise SystemExit(3)
            if self.how == "keep-slice":
                self.kept = view[:10]
        return self.f.readinto(view)


@pytest.mark.parametrize("how,exc", [
    ("raise", Boom), ("wrong-type", TypeError), ("too-many", ValueError),
    ("negative", ValueError), ("none", TypeError), ("base-exception", SystemExit),
    ("keep-slice", BufferError)])
@pytest.mark.parametrize("fail_at", [1, 7], ids=["first-call", "late"])
def test_source_failures(xattr_dir, how, exc, fail_at):
    src = FailingReader(RAW, fail_at, how)
    with pytest.raises(exc):
        efsfast.restore(xattr_dir / "f", src, backend=PosixBackend(buffer_size=4096))
    assert src.calls == fail_at          # stopped at once: not called again
    assert listing(xattr_dir) == []


def test_first_error_kept_later_chained(xattr_dir):
    def gen():
        yield RAW[:100]
        raise Boom("first")
    with pytest.raises(Boom, match="first"):
        efsfast.restore(xattr_dir / "f", gen())


def test_kept_memoryview_becomes_unusable(xattr_dir):
    kept = []

    class Keeper(io.BytesIO):
        def readinto(self, view):
            kept.append(view)
            return super().readinto(view)
    efsfast.restore(xattr_dir / "f", Keeper(RAW))
    assert kept
    with pytest.raises(ValueError):
        kept[0][0]                       # released: unusable, not dangling
    with pytest.raises(ValueError):
        bytes(kept[-1])


def test_read_returning_too_much(xattr_dir):
    class Greedy:
        def read(self, n):
            return b"\0" * (n + 1)
    with pytest.raises(ValueError, match="more than asked"):
        efsfast.restore(xattr_dir / "f", Greedy())
    assert listing(xattr_dir) == []


def test_pywin32_callback_error_code(xattr_dir):
    def cb(data, ctx, length):
        return 1117, 0                   # ERROR_IO_DEVICE
    with pytest.raises(EfsError) as ei:
        efsfast.restore(xattr_dir / "f", cb)
    assert ei.value.winerror == 1117
    assert listing(xattr_dir) == []


def test_unsupported_source_type(xattr_dir):
    with pytest.raises(TypeError):
        efsfast.restore(xattr_dir / "f", 3.5)


def test_malformed_from_fallback_is_raw_format_error(xattr_dir):
    with pytest.raises(RawFormatError) as ei:
        efsfast.restore(xattr_dir / "f", io.BytesIO(RAW[:-5]))
    assert ei.value.rule == "R8"
    assert listing(xattr_dir) == []


def test_mmap_closed_mid_restore_from_chunks(xattr_dir, tmp_path):
    """A source that closes its mmap while views of it are out gets
    BufferError (from mmap itself), and the restore leaves nothing."""
    p = tmp_path / "m"
    p.write_bytes(RAW)
    with open(p, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)

    def gen():
        view = memoryview(mm)
        yield view[:1000]
        mm.close()                       # the carried-over chunk still exports it
        yield view[1000:]
    with pytest.raises(BufferError):
        efsfast.restore(xattr_dir / "f", gen())
    assert listing(xattr_dir) == []


def restore_beside(dest, source, interfere):
    """Restore ``source`` through the C path with 1-byte buffers (a long C
    call) while ``interfere(done)`` runs in another thread; returns what it
    appended to its outcome list."""
    done = threading.Event()
    outcome = []
    t = threading.Thread(target=interfere, args=(done, outcome))
    t.start()
    try:
        efsfast.restore(dest, source, backend=PosixBackend(buffer_size=1, null_sink=True))
    finally:
        done.set()
        t.join()
    return outcome


def test_mmap_cannot_be_closed_during_c_restore(xattr_dir):
    """The C path holds the mmap's buffer for the whole call: closing it from
    another thread meanwhile raises BufferError instead of crashing."""
    big = efsfast.synthetic_raw(2_000_000, seed=22)
    mm = mmap.mmap(-1, len(big))
    mm[:] = big

    def closer(done, outcome):
        # a same-size resize succeeds until the restore has the buffer exported
        while not done.is_set():
            try:
                mm.resize(len(big))
            except BufferError:
                break
        else:
            return
        try:
            mm.close()
        except BufferError as exc:
            outcome.append(exc)
        else:
            outcome.append("closed")

    outcome = restore_beside(xattr_dir / "f", mm, closer)
    assert outcome and isinstance(outcome[0], BufferError), outcome
    mm.close()                           # fine once the restore returned


def test_bytearray_cannot_be_resized_during_restore(xattr_dir):
    content = efsfast.synthetic_raw(2_000_000, seed=24)
    big = bytearray(content)

    def resizer(done, outcome):
        while not done.is_set():
            try:
                # re-initialising resizes (refused while the C path holds the
                # export) in one call, so the restore never sees a changed size
                big.__init__(content)
            except BufferError as exc:
                outcome.append(exc)
                return

    outcome = restore_beside(xattr_dir / "f", big, resizer)
    assert outcome and isinstance(outcome[0], BufferError)
    big.append(0)                        # released afterwards


# ---- threads ----

@needs_posix
def test_gil_is_released_during_c_restore():
    """While a large restore from bytes runs in one thread, another thread
    keeps running Python code.  If the C path held the GIL, the counting loop
    could not run until the restore returned."""
    big = efsfast.synthetic_raw(32 << 20, seed=23)
    # 16-byte system buffers: two million callbacks keep the C call long
    # (tens of milliseconds) without a big input
    be = PosixBackend(buffer_size=16, null_sink=True)
    in_call = threading.Event()

    def worker():
        in_call.set()
        with _core.open_raw(os.devnull, _core.CREATE_FOR_IMPORT, be) as ctx:
            _core.write_raw(ctx, big)

    t = threading.Thread(target=worker)
    t.start()
    in_call.wait()
    n = 0
    while t.is_alive():
        n += 1
    t.join()
    print(f"\nthe other thread ran {n} loop iterations during the restore")
    assert n > 10_000, n


def test_two_threads_restore_in_parallel(xattr_dir):
    datas = [efsfast.synthetic_raw(3 << 20, seed=s) for s in (31, 32)]
    errors = []

    def run(i):
        try:
            efsfast.restore(xattr_dir / f"f{i}", datas[i])
        except BaseException as exc:   # pragma: no cover - reported below
            errors.append(exc)
    ts = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    for i in range(2):
        assert efsfast.backup(xattr_dir / f"f{i}") == datas[i]


def test_reentrant_use_of_context_is_refused(xattr_dir):
    ctx = _core.open_raw(xattr_dir / "f", _core.CREATE_FOR_IMPORT, PosixBackend())
    seen = []

    def cb(data, context, length):
        try:
            _core.write_raw(ctx, RAW)
        except RuntimeError as exc:
            seen.append(exc)
        return 0, 0
    with pytest.raises(RawFormatError):
        _core.write_raw(ctx, cb, None, None, True)
    assert seen and "already in use" in str(seen[0])
    ctx.close()
    ctx.close()                          # double close is harmless


# ---- cancellation ----

def test_cancel_token_stops_within_one_buffer(xattr_dir):
    token = efsfast.CancelToken()
    src = io.BytesIO(RAW)

    class Src:
        n = 0

        def readinto(self, view):
            Src.n += 1
            if Src.n == 3:
                token.cancel()
            return src.readinto(view)
    with pytest.raises(efsfast.CancelledError):
        efsfast.restore(xattr_dir / "f", Src(), cancel=token, backend=PosixBackend(buffer_size=512))
    assert Src.n == 3
    assert listing(xattr_dir) == []


def test_cancel_token_on_c_path(xattr_dir):
    token = efsfast.CancelToken()
    token.cancel()
    with pytest.raises(efsfast.CancelledError):
        efsfast.restore(xattr_dir / "f", RAW, cancel=token)
    assert listing(xattr_dir) == []


# ---- backup sinks ----

@pytest.mark.parametrize("sink", ["none", "path", "fd", "bytearray", "buffer", "owned", "write",
                                  "pywin32"])
def test_backup_sinks(xattr_dir, tmp_path, sink):
    efsfast.restore(xattr_dir / "f", RAW)
    be = PosixBackend(buffer_size=5000, seed=9)
    if sink == "none":
        assert efsfast.backup(xattr_dir / "f", backend=be) == RAW
        return
    if sink == "path":
        r = efsfast.backup(xattr_dir / "f", tmp_path / "out", backend=be)
        got = (tmp_path / "out").read_bytes()
        with pytest.raises(EfsError):
            efsfast.backup(xattr_dir / "f", tmp_path / "out")
    elif sink == "fd":
        fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
        r = efsfast.backup(xattr_dir / "f", fd, backend=be)
        os.close(fd)
        got = (tmp_path / "out").read_bytes()
    elif sink == "bytearray":
        out = bytearray(b"head")
        r = efsfast.backup(xattr_dir / "f", out, backend=be)
        assert out[:4] == b"head"
        got = bytes(out[4:])
    elif sink == "buffer":
        out = memoryview(bytearray(len(RAW) + 10))
        r = efsfast.backup(xattr_dir / "f", out, backend=be)
        got = bytes(out[:r.bytes])
        with pytest.raises(EfsError) as ei:
            efsfast.backup(xattr_dir / "f", memoryview(bytearray(100)))
        assert ei.value.winerror == 122
    elif sink == "owned":
        out = _core.ExportBuffer()
        r = efsfast.backup(xattr_dir / "f", out, backend=be)
        got = bytes(memoryview(out))
    elif sink == "write":
        out = io.BytesIO()
        r = efsfast.backup(xattr_dir / "f", out, backend=be)
        got = out.getvalue()
    else:
        parts = []
        r = efsfast.backup(xattr_dir / "f", lambda d, c, n: parts.append(bytes(d)), backend=be)
        got = b"".join(parts)
    assert got == RAW and r.bytes == len(RAW)


@pytest.mark.parametrize("hint", [0, 1, 4096, 1 << 20])
def test_export_buffer_grows_from_any_hint(xattr_dir, hint):
    """An ExportBuffer (memory of its own, mapped) takes the whole stream
    whatever it was sized for, appends when filled again, and is read-only."""
    efsfast.restore(xattr_dir / "f", RAW)
    be = PosixBackend(buffer_size=4096)
    buf = _core.ExportBuffer(hint)
    assert len(buf) == 0 and bytes(memoryview(buf)) == b""
    efsfast.backup(xattr_dir / "f", buf, backend=be)
    assert len(buf) == len(RAW) and bytes(memoryview(buf)) == RAW
    efsfast.backup(xattr_dir / "f", buf, backend=be)
    assert bytes(memoryview(buf)) == RAW + RAW
    view = memoryview(buf)
    assert view.readonly
    with pytest.raises(TypeError):
        view[0] = 0
    # filled while a view of it is out, the memory could move under the view
    with pytest.raises(BufferError):
        efsfast.backup(xattr_dir / "f", buf, backend=be)
    view.release()
    assert len(buf) == 2 * len(RAW)


def test_export_buffer_digest_and_failure(xattr_dir):
    """export_opened hashes an ExportBuffer's stream; a failed export leaves
    the buffer usable (what it had) and raises the export's error."""
    import hashlib
    from efsfast import api
    efsfast.restore(xattr_dir / "f", RAW)
    d = hashlib.sha256()
    buf = _core.ExportBuffer(10)
    with _core.open_raw(xattr_dir / "f", 0, PosixBackend()) as raw:
        api.export_opened(raw, buf, digest=d)
    assert d.hexdigest() == hashlib.sha256(RAW).hexdigest()
    (xattr_dir / "plain").write_bytes(b"x")
    buf = _core.ExportBuffer()
    with pytest.raises(EfsError):
        efsfast.backup(xattr_dir / "plain", buf)
    assert bytes(memoryview(buf)) == b""
    with pytest.raises(MemoryError):
        _core.ExportBuffer(1 << 62)


def test_backup_sink_failure_stops(xattr_dir):
    efsfast.restore(xattr_dir / "f", RAW)

    class Bad:
        calls = 0

        def write(self, data):
            Bad.calls += 1
            raise Boom("disk on fire")
    with pytest.raises(Boom):
        efsfast.backup(xattr_dir / "f", Bad(), backend=PosixBackend(buffer_size=1000))
    assert Bad.calls == 1


def test_backup_to_path_leaves_no_partial_file(xattr_dir, tmp_path):
    (xattr_dir / "plain").write_bytes(b"x")
    with pytest.raises(EfsError):
        efsfast.backup(xattr_dir / "plain", tmp_path / "out")
    assert listing(tmp_path) == [p for p in listing(tmp_path) if not p.startswith(".out")]
    assert not (tmp_path / "out").exists()


# ---- bulk ----

def test_restore_many(xattr_dir):
    datas = [efsfast.synthetic_raw(random.Random(i).randrange(100_000), seed=i) for i in range(40)]
    jobs = [(xattr_dir / f"f{i}", d) for i, d in enumerate(datas)]
    jobs[7] = (xattr_dir / "f7", datas[7][:-1])            # broken
    seen = []
    res = efsfast.restore_many(jobs, workers=2, progress=lambda f, b, t: seen.append((f, b, t)))
    assert [e.index for e in res.failures] == [7]
    assert isinstance(res.failures[0].error, RawFormatError)
    assert "item 7" in str(res.failures[0])
    assert res.files == 39 and res.results[7] is None and seen[-1][0] == 39
    for i, d in enumerate(datas):
        if i != 7:
            assert efsfast.backup(xattr_dir / f"f{i}") == d
    assert not (xattr_dir / "f7").exists()
    with pytest.raises(efsfast.BulkRestoreError, match="item 7"):
        res.raise_for_errors()


@pytest.mark.parametrize("way", ["plain", "options", "python"])
def test_restore_many_results_are_the_same_whichever_path_makes_them(xattr_dir, way):
    """The common jobs' results are made in C (BulkRestore.outcomes), jobs
    with other options' by the loop over c_jobs, custom sources' by
    restore(): each is a RestoreResult like restore()'s, frozen, equal and
    hashable, its path a str even where the job gave a Path."""
    datas = [efsfast.synthetic_raw(1000 + 700 * i, seed=i) for i in range(5)]
    digest = (len(datas[3]), hashlib.sha256(datas[3]).hexdigest())
    options = {"plain": {"expect": digest}, "options": {"expect": digest, "overwrite": False},
               "python": {"expect": digest}}[way]
    src = (lambda d: io.BytesIO(d)) if way == "python" else (lambda d: d)
    jobs = [(xattr_dir / f"f{i}", src(d)) for i, d in enumerate(datas)]
    jobs[3] = (xattr_dir / "f3", src(datas[3]), options)
    jobs[1] = (xattr_dir / "f1", src(datas[1][:-1]))            # broken
    res = efsfast.restore_many(jobs, workers=2)
    assert [e.index for e in res.failures] == [1] and res.results[1] is None
    assert (res.files, res.bytes) == (4, sum(len(d) for i, d in enumerate(datas) if i != 1))
    alone = efsfast.restore(xattr_dir / "alone", datas[0])
    for i, r in enumerate(res.results):
        if i == 1:
            continue
        assert type(r) is type(alone) is efsfast.RestoreResult
        assert r == efsfast.RestoreResult(str(xattr_dir / f"f{i}"), len(datas[i]), r.calls)
        assert vars(r) == vars(efsfast.RestoreResult(r.path, r.bytes, r.calls))
        assert type(r.path) is str and r.calls >= 1 and hash(r) == hash(
            efsfast.RestoreResult(r.path, r.bytes, r.calls))
        with pytest.raises(dataclasses.FrozenInstanceError):
            r.bytes = 0    # type: ignore[misc]
    assert repr(res.results[0]).startswith("RestoreResult(path=")


def test_restore_many_fail_fast(xattr_dir):
    jobs = [(xattr_dir / "bad", b"junk")] + [(xattr_dir / f"f{i}", RAW) for i in range(20)]
    res = efsfast.restore_many(jobs, workers=1, fail_fast=True)
    assert res.failures[0].index == 0 and res.cancelled
    assert res.files < 20


# ---- pywin32 compatibility ----

PYWIN32_SCRIPT = '''
from efsfast.compat import win32file

def backup_file(path, out_path):
    out = open(out_path, "wb")
    def export_cb(data, ctx, length):
        ctx.write(data)
        return 0
    h = win32file.OpenEncryptedFileRaw(path, 0)
    try:
        win32file.ReadEncryptedFileRaw(export_cb, out, h)
    finally:
        win32file.CloseEncryptedFileRaw(h)
        out.close()

def restore_file(raw_path, path):
    src = open(raw_path, "rb")
    def import_cb(data, ctx, length):
        chunk = ctx.read(length)
        data[:len(chunk)] = chunk
        return 0, len(chunk)
    h = win32file.OpenEncryptedFileRaw(path, win32file.CREATE_FOR_IMPORT)
    try:
        win32file.WriteEncryptedFileRaw(import_cb, src, h)
    finally:
        win32file.CloseEncryptedFileRaw(h)
        src.close()
'''


def test_pywin32_script_runs_unchanged(xattr_dir, tmp_path):
    ns = {}
    exec(compile(PYWIN32_SCRIPT, "pywin32_script.py", "exec"), ns)
    (tmp_path / "in.efsraw").write_bytes(RAW)
    ns["restore_file"](str(tmp_path / "in.efsraw"), str(xattr_dir / "f"))
    ns["backup_file"](str(xattr_dir / "f"), str(tmp_path / "out.efsraw"))
    assert (tmp_path / "out.efsraw").read_bytes() == RAW


def test_compat_checks_lengths_and_double_close(xattr_dir):
    from efsfast.compat import win32file
    h = win32file.OpenEncryptedFileRaw(str(xattr_dir / "f"), win32file.CREATE_FOR_IMPORT)
    with pytest.raises(ValueError):
        win32file.WriteEncryptedFileRaw(lambda d, c, n: (0, n + 1), None, h)
    win32file.CloseEncryptedFileRaw(h)
    with pytest.raises(ValueError, match="already been closed"):    # as pywin32
        win32file.CloseEncryptedFileRaw(h)
    with pytest.raises(win32file.error):
        win32file.WriteEncryptedFileRaw(lambda d, c, n: (0, 0), None, h)
    assert listing(xattr_dir) == []


def test_buffer_acquisitions_balance(xattr_dir):
    """Every buffer acquired from a source or sink is released, after
    successes and failures alike, and no view of a system buffer stays out."""
    import gc
    a0, r0, out0 = _testhooks._buffer_counts()
    efsfast.restore(xattr_dir / "a", RAW)
    efsfast.restore(xattr_dir / "b", ReadOnly(RAW))
    efsfast.restore(xattr_dir / "c", chunks(RAW, 1))
    for how in ("raise", "too-many", "keep-slice"):
        src = FailingReader(RAW, 2, how)
        with pytest.raises(Exception):
            efsfast.restore(xattr_dir / "x", src)
        del src
    with pytest.raises(RawFormatError):
        efsfast.restore(xattr_dir / "x", RAW[:-1])
    efsfast.backup(xattr_dir / "a", memoryview(bytearray(len(RAW))))
    efsfast.backup(xattr_dir / "a", io.BytesIO())
    efsfast.restore_many([(xattr_dir / f"m{i}", RAW) for i in range(5)] +
                         [(xattr_dir / "bad", RAW[:10])])
    gc.collect()
    a1, r1, out1 = _testhooks._buffer_counts()
    assert a1 - a0 > 10
    assert (a1 - a0, out1) == (r1 - r0, out0)


def test_restore_many_python_path(xattr_dir):
    """Custom sources take the thread-pool path: same per-item results."""
    jobs = [(xattr_dir / f"f{i}", io.BytesIO(RAW)) for i in range(6)]
    jobs[2] = (xattr_dir / "f2", FailingReader(RAW, 1, "raise"))
    seen = []
    res = efsfast.restore_many(jobs, workers=2, progress=lambda f, b, t: seen.append(f))
    assert [e.index for e in res.failures] == [2] and isinstance(res.failures[0].error, Boom)
    assert res.files == 5 and max(seen) == 5
    assert sorted(listing(xattr_dir)) == sorted(f"f{i}" for i in range(6) if i != 2)


@pytest.mark.parametrize("kind", ["c-path", "python-path"])
def test_restore_many_cancelled_before_start(xattr_dir, kind):
    token = efsfast.CancelToken()
    token.cancel()
    src = (lambda: RAW) if kind == "c-path" else (lambda: io.BytesIO(RAW))
    res = efsfast.restore_many([(xattr_dir / f"f{i}", src()) for i in range(4)], cancel=token)
    assert res.cancelled and res.files == 0 and not res.failures
    assert listing(xattr_dir) == []


def test_backup_many(xattr_dir, tmp_path):
    for i in range(5):
        efsfast.restore(xattr_dir / f"f{i}", RAW)
    jobs = [(xattr_dir / f"f{i}", tmp_path / f"f{i}.efsraw") for i in range(5)]
    jobs.append((xattr_dir / "missing", tmp_path / "missing.efsraw"))
    res = efsfast.backup_many(jobs, workers=2)
    assert [e.index for e in res.failures] == [5] and res.failures[0].error.winerror == 2
    for i in range(5):
        assert (tmp_path / f"f{i}.efsraw").read_bytes() == RAW
    assert not (tmp_path / "missing.efsraw").exists()


def _py_backup_many(monkeypatch):
    """backup_many forced onto its Python path (the reference of the C one)."""
    from efsfast import api
    monkeypatch.setattr(api, "_backup_many_c", lambda *a, **k: None)


@pytest.mark.parametrize("path", ["c-path", "python-path"])
def test_backup_many_paths_agree(xattr_dir, tmp_path, monkeypatch, path):
    """backup_many with path sinks (every item in C on the POSIX side) gives
    what the per-item Python path gives: the same bytes, results, calls,
    and the same error for each kind of failure: a plain file, a missing
    one, a backup file that exists (kept as it was), a folder job; no
    temporary is left behind."""
    if path == "python-path":
        _py_backup_many(monkeypatch)
    src = xattr_dir / "src"
    src.mkdir()
    for i in range(4):
        efsfast.restore(src / f"f{i}", RAW)
    (src / "plain").write_bytes(b"not encrypted")
    efsfast.restore(src / "dir", efsfast.synthetic_raw(0, directory=True), directory=True)
    out = tmp_path / "out"
    out.mkdir()
    (out / "f3.efsraw").write_bytes(b"keep me")
    jobs = [(str(src / f"f{i}"), str(out / f"f{i}.efsraw")) for i in range(4)]
    jobs += [(src / "plain", out / "plain.efsraw"), (src / "missing", out / "missing.efsraw"),
             (src / "dir", out / "dir.efsraw", {"directory": True})]
    seen = []
    res = efsfast.backup_many(jobs, workers=2, progress=lambda f, b, t: seen.append((f, t)))
    assert [e.index for e in res.failures] == [3, 4, 5]
    exists, plain, missing = (e.error for e in res.failures)
    assert exists.winerror == 80 and exists.filename == str(out / "f3.efsraw")
    assert "the backup file exists" in str(exists)
    assert (out / "f3.efsraw").read_bytes() == b"keep me"
    reference = {}
    for name in ("plain", "missing"):
        try:
            efsfast.backup(src / name, tmp_path / f"{name}.ref")
        except efsfast.EfsError as exc:
            reference[name] = exc
    assert (type(plain), plain.winerror, str(plain)) == (
        type(reference["plain"]), reference["plain"].winerror, str(reference["plain"]))
    assert (type(missing), missing.winerror, missing.filename) == (
        type(reference["missing"]), reference["missing"].winerror, str(src / "missing"))
    for i in range(3):
        assert (out / f"f{i}.efsraw").read_bytes() == RAW
        r = res.results[i]
        assert (r.path, r.bytes) == (str(src / f"f{i}"), len(RAW)) and r.calls >= 1
        # (made in C field by field on the C path: the same frozen dataclass)
        same = efsfast.BackupResult(str(src / f"f{i}"), len(RAW), r.calls)
        assert type(r) is efsfast.BackupResult and r == same and hash(r) == hash(same)
        assert vars(r) == vars(same) and r.data is None
        with pytest.raises(dataclasses.FrozenInstanceError):
            r.calls = 0    # type: ignore[misc]
    assert (out / "dir.efsraw").read_bytes() == efsfast.backup(src / "dir", directory=True)
    assert res.files == 4 and res.bytes == 3 * len(RAW) + res.results[6].bytes
    assert seen[-1] == (4, 7)
    assert sorted(os.listdir(out)) == sorted(
        [f"f{i}.efsraw" for i in range(4)] + ["dir.efsraw"])      # no temporaries


@pytest.mark.parametrize("kind", ["str", "path-like", "list"])
def test_backup_many_pairs_reach_c_as_they_are(xattr_dir, tmp_path, monkeypatch, kind):
    """Jobs that are all (object, backup file) pairs of paths go to the C
    batch as given (no job list made again), with the results, failures and
    bytes of the per-item Python path."""
    from efsfast import api
    src = xattr_dir / "src"
    src.mkdir()
    for i in range(3):
        efsfast.restore(src / f"f{i}", RAW)
    (src / "plain").write_bytes(b"not encrypted")
    conv = {"str": str, "path-like": lambda p: p, "list": str}[kind]
    general = []
    real = api._jobs_with_options
    monkeypatch.setattr(api, "_jobs_with_options", lambda *a: general.append(a) or real(*a))

    def run(out):
        out.mkdir()
        pair = list if kind == "list" else tuple
        return efsfast.backup_many([pair((conv(src / n), conv(out / f"{n}.efsraw")))
                                    for n in ("f0", "f1", "plain", "missing", "f2")], workers=2)
    c = run(tmp_path / "c")
    assert general == []                # (the pairs went to C as they were)
    _py_backup_many(monkeypatch)
    py = run(tmp_path / "py")
    assert [(e.index, type(e.error), e.error.winerror) for e in c.failures] == [
        (e.index, type(e.error), e.error.winerror) for e in py.failures] == [
        (2, type(py.failures[0].error), py.failures[0].error.winerror),
        (3, type(py.failures[1].error), 2)]
    assert [(r.path, r.bytes) if r else None for r in c.results] == [
        (r.path, r.bytes) if r else None for r in py.results]
    assert (c.files, c.bytes) == (py.files, py.bytes) == (3, 3 * len(RAW))
    for n in ("f0", "f1", "f2"):
        assert (tmp_path / "c" / f"{n}.efsraw").read_bytes() == RAW
    assert sorted(os.listdir(tmp_path / "c")) == ["f0.efsraw", "f1.efsraw", "f2.efsraw"]


@pytest.mark.skipif(os.name == "nt", reason="BulkExport is the POSIX system side's, which "
                    "is not built on Windows")
@pytest.mark.parametrize("job", [("a",), ("a", "b", {}), (b"a", "b"), ("a", 5), 5],
                         ids=["one", "three", "bytes", "not-a-path", "not-a-job"])
def test_bulk_export_pairs_refuses_what_is_not_a_pair(job):
    """BulkExport(pairs=True) takes only pairs of str or path-like paths:
    anything else is NotPairs (backup_many then takes its general path)."""
    with pytest.raises(_core.NotPairs):
        _core.BulkExport([("x", "y"), job], _core.PosixBackend(), _core.CancelToken(),
                         capture_ntfs=False, overwrite=False, hash=False, pairs=True)


def test_backup_many_overwrite_and_fail_fast(xattr_dir, tmp_path):
    """overwrite (for the batch, or one job's option) replaces an existing
    backup file whole; fail_fast stops the batch at the first failure."""
    for i in range(3):
        efsfast.restore(xattr_dir / f"f{i}", RAW)
    for i in range(3):
        (tmp_path / f"f{i}.efsraw").write_bytes(b"old")
    jobs = [(xattr_dir / f"f{i}", tmp_path / f"f{i}.efsraw") for i in range(2)]
    jobs.append((xattr_dir / "f2", tmp_path / "f2.efsraw", {"overwrite": True}))
    res = efsfast.backup_many(jobs, overwrite=False)
    assert [e.index for e in res.failures] == [0, 1] and res.files == 1
    assert (tmp_path / "f2.efsraw").read_bytes() == RAW
    res = efsfast.backup_many(jobs[:2], overwrite=True)
    assert res.ok and all((tmp_path / f"f{i}.efsraw").read_bytes() == RAW for i in range(2))
    many = [(xattr_dir / "missing", tmp_path / "m.efsraw")] + [
        (xattr_dir / "f0", tmp_path / f"g{i}.efsraw") for i in range(200)]
    res = efsfast.backup_many(many, workers=1, fail_fast=True)
    assert [e.index for e in res.failures] == [0] and res.cancelled and res.files < 200
