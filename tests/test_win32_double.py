"""The Windows path run end to end: efsfast's shipped extension modules
against advapi32's raw-EFS contract (spec 7), through the advapi32 test
double (tests/win32/advapi32_double.c) put into their import tables, and
against Wine's own advapi32 stubs.  .ci/windows runs this under Wine."""
import io
import os

import pytest

import efsfast
from efsfast import CancelledError, EfsError, _core, _testhooks, volume
from efsfast.compat import win32file

import win32double
from conftest import listing, under_wine
from test_core import C_PATH, FALLBACK, make_source

WHY = win32double.why_unavailable()
needs_double = pytest.mark.skipif(bool(WHY), reason=WHY or "")

RAW = efsfast.synthetic_raw(150_000, named_streams={"alt": 700}, seed=41)
DIR_RAW = efsfast.synthetic_raw(directory=True, named_streams={"x": 5}, seed=42)
OLD = b"the old file, which must survive a failed overwrite"


@pytest.fixture(scope="module")
def report():
    """Counts the byte-identical round trips for .ci/windows's summary."""
    counts = {"round_trips": 0}
    yield counts
    win32double.record("double_round_trips", counts["round_trips"])


@pytest.fixture
def double(report):
    with win32double.patched() as d:
        before = d.counters()["open_contexts"]
        d.same = lambda a, b: _same(report, a, b)
        yield d
        assert d.counters()["open_contexts"] == before, "a raw context was never closed"


def _same(report, got, want):
    assert bytes(got) == bytes(want)
    report["round_trips"] += 1


def source_of(kind, data, folder):
    if kind == "fd":                     # binary mode: Windows fds default to text
        p = folder / "src.efsraw"
        p.write_bytes(data)
        return os.open(p, os.O_RDONLY | os.O_BINARY)
    return make_source(kind, data, folder)


# ---- Wine's own advapi32 (no double) ----

@pytest.mark.skipif(not under_wine(), reason="Wine's advapi32 stubs exist only under Wine")
def test_wine_stubs_give_a_clean_error(tmp_path):
    with pytest.raises(EfsError) as ei:
        efsfast.restore(tmp_path / "f", RAW)
    assert ei.value.winerror == 120
    (tmp_path / "plain").write_bytes(b"x")
    with pytest.raises(EfsError) as eb:
        efsfast.backup(tmp_path / "plain")
    assert eb.value.winerror == 120
    assert listing(tmp_path) == ["plain"]
    win32double.record("wine_stub_winerror", ei.value.winerror)


# ---- every source and sink kind ----

@needs_double
@pytest.mark.parametrize("kind", C_PATH + FALLBACK)
def test_every_source_kind(double, tmp_path, kind):
    src_dir, out = tmp_path / "src", tmp_path / "out"
    src_dir.mkdir()
    out.mkdir()
    source = source_of(kind, RAW, src_dir)
    try:
        r = efsfast.restore(out / "f", source)
    finally:
        if kind == "fd":
            os.close(source)
        elif kind == "mmap":
            source.close()
    assert r.bytes == len(RAW)
    double.same((out / "f").read_bytes(), RAW)       # the double keeps the stream as is
    double.same(efsfast.backup(out / "f"), RAW)
    assert listing(out) == ["f"]
    assert double.is_encrypted(out / "f")


@needs_double
@pytest.mark.parametrize("sink", ["none", "bytearray", "buffer", "owned", "fd", "path", "write",
                                  "pywin32"])
def test_every_sink_kind(double, tmp_path, sink):
    efsfast.restore(tmp_path / "f", RAW)
    if sink == "none":
        got = efsfast.backup(tmp_path / "f")
    elif sink == "bytearray":
        got = bytearray(b"head:")
        efsfast.backup(tmp_path / "f", got)
        assert got[:5] == b"head:"
        got = got[5:]
    elif sink == "buffer":
        got = bytearray(len(RAW))
        efsfast.backup(tmp_path / "f", memoryview(got))
    elif sink == "owned":       # grown from 100 bytes (the heap on Windows)
        buf = efsfast.ExportBuffer(100)
        efsfast.backup(tmp_path / "f", buf)
        got = bytes(memoryview(buf))
    elif sink == "fd":
        fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT | os.O_BINARY)
        try:
            efsfast.backup(tmp_path / "f", fd)
        finally:
            os.close(fd)
        got = (tmp_path / "out").read_bytes()
    elif sink == "path":
        efsfast.backup(tmp_path / "f", tmp_path / "out")
        got = (tmp_path / "out").read_bytes()
    elif sink == "write":
        f = io.BytesIO()
        efsfast.backup(tmp_path / "f", f)
        got = f.getvalue()
    else:
        parts = []
        ctx = win32file.OpenEncryptedFileRaw(str(tmp_path / "f"), 0)
        try:
            win32file.ReadEncryptedFileRaw(lambda data, c, n: parts.append(bytes(data)), None, ctx)
        finally:
            win32file.CloseEncryptedFileRaw(ctx)
        got = b"".join(parts)
    double.same(got, RAW)
    assert sorted(listing(tmp_path)) == sorted(["f"] + (["out"] if sink in ("fd", "path") else []))


@needs_double
def test_restore_from_bytes_fills_every_offered_buffer(double, tmp_path):
    efsfast.restore(tmp_path / "f", RAW)
    c = double.counters()
    assert c["max_offered"] == win32double.IMPORT_BUFFER
    assert c["short_fills"] <= 1                  # only the last piece may be short
    assert c["import_calls"] == -(-len(RAW) // win32double.IMPORT_BUFFER) + 1   # + the end call
    assert c["guard_violations"] == c["overclaims"] == 0
    double.same((tmp_path / "f").read_bytes(), RAW)


@needs_double
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("kind", ["bytes", "readinto", "chunks"])
def test_seeded_buffer_schedules(double, tmp_path, seed, kind):
    double.schedule(70000, 1, seed)
    efsfast.restore(tmp_path / "f", make_source(kind, RAW, tmp_path))
    assert double.counters()["import_calls"] > len(RAW) // 70000 + 1
    double.same(efsfast.backup(tmp_path / "f"), RAW)
    assert double.counters()["guard_violations"] == 0


@needs_double
def test_directory_round_trip(double, tmp_path):
    efsfast.restore(tmp_path / "d", DIR_RAW, directory=True)
    assert (tmp_path / "d").is_dir() and double.is_encrypted(tmp_path / "d")
    double.same(efsfast.backup(tmp_path / "d", directory=True), DIR_RAW)
    assert listing(tmp_path) == ["d"]
    with pytest.raises(EfsError) as ei:                # CREATE_FOR_DIR on a file (spec 7.1)
        (tmp_path / "file").write_bytes(b"x")
        efsfast.backup(tmp_path / "file", directory=True)
    assert ei.value.winerror == 267


# ---- bulk and trees ----

@needs_double
@pytest.mark.parametrize("source", ["buffers", "paths"])
def test_restore_many_on_threads(double, tmp_path, source):
    raws = [efsfast.synthetic_raw(1000 * i, seed=i) for i in range(48)]
    if source == "paths":
        (tmp_path / "in").mkdir()
        for i, r in enumerate(raws):
            (tmp_path / "in" / f"{i}.efsraw").write_bytes(r)
    jobs = [(tmp_path / "out" / f"f{i}", r if source == "buffers" else tmp_path / "in" / f"{i}.efsraw")
            for i, r in enumerate(raws)]
    (tmp_path / "out").mkdir()
    result = efsfast.restore_many(jobs, workers=4)
    assert result.ok and result.files == len(raws)
    for i, r in enumerate(raws):
        double.same((tmp_path / "out" / f"f{i}").read_bytes(), r)
    assert sorted(listing(tmp_path / "out")) == sorted(f"f{i}" for i in range(len(raws)))


@needs_double
def test_restore_many_failures_leave_nothing(double, tmp_path):
    raws = [efsfast.synthetic_raw(200_000, seed=i) for i in range(6)]
    double.fail_write(5, 112)                           # one item's disk fills up
    result = efsfast.restore_many([(tmp_path / f"f{i}", r) for i, r in enumerate(raws)], workers=2)
    assert len(result.failures) == 1 and result.failures[0].error.winerror == 112
    assert result.files == 5
    assert len(listing(tmp_path)) == 5                  # no partial file, no temporary


@needs_double
def test_tree_jobs_and_the_demo(double, tmp_path, monkeypatch):
    # Wine keeps no ENCRYPTED attribute: ask the double what it imported
    monkeypatch.setattr(volume.EncryptionProbe, "__call__",
                        lambda self, path, st=None: double.is_encrypted(path))
    from efsfast.demo import run_demo
    lines = []
    report = run_demo(str(tmp_path / "work"), files=24, workers=3, log=lines.append)
    assert report.ok and report.identical == 24 + 4, report
    assert report.system_side == "the win32 system side (advapi32)"
    assert any("with the win32 system side (advapi32)" in line for line in lines)


@needs_double
def test_folder_set_round_trip(double, tmp_path, monkeypatch):
    """backup-tree into a folder set, verify-set, restore-tree from it, on
    the win32 side: the manifest is written in binary (Windows' text mode
    had made each line end in "\r\n"), and every stream comes back."""
    from efsfast import cli
    monkeypatch.setattr(volume.EncryptionProbe, "__call__",
                        lambda self, path, st=None: double.is_encrypted(path))
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    streams = {"a": RAW, os.path.join("d", "b"): efsfast.synthetic_raw(3000, seed=7)}
    for rel, raw in streams.items():
        efsfast.restore(src / rel, raw)
    set_dir = tmp_path / "set"
    assert cli.main(["backup-tree", str(src), str(set_dir), "--quiet"]) == 0
    manifest = (set_dir / "efsfast-manifest.jsonl").read_bytes()
    assert b"\r" not in manifest and manifest.endswith(b"\n")
    assert cli.main(["verify-set", str(set_dir)]) == 0
    out = tmp_path / "out"
    assert cli.main(["restore-tree", str(set_dir), str(out), "--quiet"]) == 0
    for rel, raw in streams.items():
        double.same(efsfast.backup(out / rel), raw)


# ---- cancellation and every injected fault: the right error, nothing left ----

@needs_double
def test_cancel_leaves_nothing(double, tmp_path):
    token = efsfast.CancelToken()

    def chunks():
        yield RAW[:1000]
        token.cancel()
        yield RAW[1000:]
    with pytest.raises(CancelledError) as ei:
        efsfast.restore(tmp_path / "f", chunks(), cancel=token)
    assert ei.value.winerror == 1223
    assert listing(tmp_path) == []


@needs_double
@pytest.mark.parametrize("fault,code", [("open", 5), ("write-first", 112), ("write-late", 29),
                                        ("source-raises", None)])
@pytest.mark.parametrize("mode", ["new", "overwrite"])
def test_restore_faults(double, tmp_path, fault, code, mode):
    dest = tmp_path / "f"
    if mode == "overwrite":
        dest.write_bytes(OLD)
    source = RAW
    if fault == "open":
        double.fail_open(code)
    elif fault == "write-first":
        double.fail_write(1, code)
    elif fault == "write-late":
        double.fail_write(2, code)
    else:
        def source():
            yield RAW[:70000]
            raise KeyError("the source broke")
        source = source()
    with pytest.raises(KeyError if code is None else EfsError) as ei:
        efsfast.restore(dest, source, overwrite=mode == "overwrite")
    if code is not None:
        assert ei.value.winerror == code
    assert listing(tmp_path) == (["f"] if mode == "overwrite" else [])
    if mode == "overwrite":
        assert dest.read_bytes() == OLD


@needs_double
@pytest.mark.parametrize("how,code", [(1, 87), (2, 998), (3, 31)],
                         ids=["over-long-length", "write-past-capacity", "callback-fails"])
def test_contract_breaking_callbacks(double, tmp_path, how, code):
    with _core.open_raw(tmp_path / "f", _core.CREATE_FOR_IMPORT) as ctx:
        with pytest.raises(EfsError) as ei:
            _testhooks._write_misbehaving(ctx, RAW, how, 2)
    assert ei.value.winerror == code


@needs_double
@pytest.mark.parametrize("sink", ["path", "none", "pywin32"])
def test_backup_read_fault(double, tmp_path, sink):
    efsfast.restore(tmp_path / "f", RAW)
    double.fail_read(2, 30)
    with pytest.raises(EfsError) as ei:
        if sink == "path":
            efsfast.backup(tmp_path / "f", tmp_path / "out")
        elif sink == "none":
            efsfast.backup(tmp_path / "f")
        else:
            ctx = win32file.OpenEncryptedFileRaw(str(tmp_path / "f"), 0)
            try:
                win32file.ReadEncryptedFileRaw(lambda d, c, n: 0, None, ctx)
            finally:
                win32file.CloseEncryptedFileRaw(ctx)
    assert ei.value.winerror == 30
    assert listing(tmp_path) == ["f"]


@needs_double
def test_export_callback_code_and_exception(double, tmp_path):
    efsfast.restore(tmp_path / "f", RAW)
    ctx = win32file.OpenEncryptedFileRaw(str(tmp_path / "f"), 0)
    try:
        with pytest.raises(win32file.error) as ei:
            win32file.ReadEncryptedFileRaw(lambda d, c, n: 1223, None, ctx)
        assert ei.value.winerror == 1223
    finally:
        win32file.CloseEncryptedFileRaw(ctx)
    with pytest.raises(ZeroDivisionError):
        efsfast.backup(tmp_path / "f", type("W", (), {"write": lambda self, b: 1 / 0})())


@needs_double
def test_missing_file_is_a_file_not_found_error(double, tmp_path):
    with pytest.raises(FileNotFoundError) as ei:
        efsfast.backup(tmp_path / "nonexistent")
    assert isinstance(ei.value, EfsError) and ei.value.winerror == 2
    assert ei.value.filename == str(tmp_path / "nonexistent")
    with pytest.raises(FileNotFoundError):
        efsfast.restore(tmp_path / "out", tmp_path / "nonexistent")
    assert listing(tmp_path) == []


# ---- replacing, and not replacing ----

@needs_double
def test_existing_destination(double, tmp_path):
    dest = tmp_path / "f"
    dest.write_bytes(OLD)
    with pytest.raises(EfsError) as ei:
        efsfast.restore(dest, RAW)
    assert ei.value.winerror == 80 and dest.read_bytes() == OLD
    efsfast.restore(dest, RAW, overwrite=True)
    double.same(dest.read_bytes(), RAW)
    assert listing(tmp_path) == ["f"]


@needs_double
def test_existing_folder(double, tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(EfsError) as ei:
        efsfast.restore(tmp_path / "d", DIR_RAW, directory=True)
    assert ei.value.winerror == 80
    efsfast.restore(tmp_path / "d", DIR_RAW, directory=True, overwrite=True)
    double.same(efsfast.backup(tmp_path / "d", directory=True), DIR_RAW)
    # over a folder that holds files: imported in place, the files stay
    (tmp_path / "d" / "child").write_bytes(b"x")
    other = efsfast.synthetic_raw(directory=True, seed=43)
    efsfast.restore(tmp_path / "d", other, directory=True, overwrite=True)
    double.same(efsfast.backup(tmp_path / "d", directory=True), other)
    assert listing(tmp_path) == ["d"] and listing(tmp_path / "d") == ["child"]
    result = efsfast.restore_many([(tmp_path / "d", DIR_RAW, {"directory": True})], overwrite=True)
    assert result.ok
    double.same(efsfast.backup(tmp_path / "d", directory=True), DIR_RAW)
    assert listing(tmp_path) == ["d"] and listing(tmp_path / "d") == ["child"]


# ---- long paths ----

@needs_double
def test_paths_longer_than_max_path(double, tmp_path):
    folder = os.path.join(str(tmp_path), *["a-folder-name-of-forty-characters-long-" for _ in range(8)])
    os.makedirs("\\\\?\\" + os.path.abspath(folder))
    dest = os.path.join(folder, "file")
    assert len(dest) > 300
    efsfast.restore(dest, RAW)
    double.same(efsfast.backup(dest), RAW)
    efsfast.restore(dest + ".d", DIR_RAW, directory=True)
    double.same(efsfast.backup(dest + ".d", directory=True), DIR_RAW)
    result = efsfast.restore_many([(os.path.join(folder, f"m{i}"), RAW) for i in range(3)])
    assert result.ok
    assert sorted(os.listdir("\\\\?\\" + os.path.abspath(folder))) == ["file", "file.d", "m0", "m1", "m2"]
