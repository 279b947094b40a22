"""The header walk that tells a file's raw stream from a directory's without
reading the ciphertext (tree restores read every source byte once)."""
import os

import pytest
from hypothesis import given, settings, strategies as st

from efsfast import _core, raw
from efsfast.tree import _directory_streams

needs_posix = pytest.mark.skipif(not _core.HAVE_POSIX, reason="the C probe (efs_probe.c) "
                                 "runs on the POSIX side only; Windows walks in Python")
# the C probe's answers as raw.has_unnamed_stream gives them
_AS_PY = {_core.PROBE_UNNAMED: True, _core.PROBE_NO_UNNAMED: False, _core.PROBE_UNKNOWN: None}


def _c_probe(*paths):
    """efs_probe.c's answer per path, through two worker threads."""
    import threading
    probe = _core.StreamProbe([os.fspath(p) for p in paths])
    threads = [threading.Thread(target=probe.work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [probe.result(i) for i in range(len(paths))]


def _truth(data: bytes) -> bool:
    return any(s.name == raw.UNNAMED_STREAM for s in raw.inspect(data).streams)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 200_000), directory=st.booleans(),
       named=st.dictionaries(st.text("abcXYZ", min_size=1, max_size=4),
                             st.integers(0, 70_000), max_size=3))
def test_probe_agrees_with_the_parser(tmp_path_factory, size, directory, named):
    data = raw.synthetic_raw(size, named_streams=named, directory=directory)
    p = tmp_path_factory.mktemp("probe") / "s.efsraw"
    p.write_bytes(data)
    assert raw.has_unnamed_stream(p) is _truth(data)
    if _core.HAVE_POSIX:
        assert _AS_PY[_c_probe(p)[0][0]] is _truth(data)


@needs_posix
@settings(max_examples=300, deadline=None)
@given(size=st.integers(0, 70_000), directory=st.booleans(),
       named=st.dictionaries(st.text("ab", min_size=1, max_size=2), st.integers(0, 5000),
                             max_size=2),
       edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=4),
       cut=st.one_of(st.none(), st.integers(0, 1 << 20)))
def test_c_probe_agrees_with_the_python_walk_on_damaged_streams(tmp_path_factory, size, directory,
                                                                named, edits, cut):
    """efs_probe.c against raw.walk_for_unnamed_stream on streams with bytes
    changed (mostly in the headers, where the walk looks) and cut short: the
    same answer for every input, since restore-tree takes the C one."""
    data = bytearray(raw.synthetic_raw(size, named_streams=named, directory=directory))
    heads = [s.offset for s in raw.inspect(bytes(data)).streams] or [20]
    for where, value in edits:
        # half of the edits land in the first 40 bytes of some stream header
        pos = (heads[where % len(heads)] + where % 40) if where & 1 else where % len(data)
        if pos < len(data):
            data[pos] = value
    if cut is not None:
        del data[cut % (len(data) + 1):]
    p = tmp_path_factory.mktemp("probe") / "s.efsraw"
    p.write_bytes(bytes(data))
    answer, err = _c_probe(p)[0]
    assert (answer, err) != (_core.PROBE_IO_ERROR, 0)
    assert _AS_PY[answer] is raw.has_unnamed_stream(p)


@needs_posix
def test_c_probe_of_what_cannot_be_read(tmp_path):
    """A path that cannot be opened, or a folder: an I/O answer with its
    errno, which restore-tree takes as "a file" (the restore then names the
    error), as is_directory_stream does."""
    import errno
    (tmp_path / "d").mkdir()
    missing, folder = _c_probe(tmp_path / "missing", tmp_path / "d")
    assert missing == (_core.PROBE_IO_ERROR, errno.ENOENT)
    assert folder == (_core.PROBE_IO_ERROR, errno.EISDIR)
    assert _directory_streams([("t", str(tmp_path / "missing"))], 1) == []


def test_directory_streams_agree_with_is_directory_stream(tmp_path):
    """restore-tree's bulk probe (threads from 256 streams) against the
    one-path probe, on a mix of folders', files' and damaged streams."""
    from efsfast.tree import is_directory_stream
    paths = []
    for i in range(300):
        data = raw.synthetic_raw(i * 7, directory=i % 3 == 0)
        p = tmp_path / f"s{i}.efsraw"
        p.write_bytes(data[:len(data) - (i % 5 == 4)])
        paths.append(str(p))
    jobs = [(f"target{i}", p) for i, p in enumerate(paths)]
    truth = [i for i, p in enumerate(paths) if is_directory_stream(p)]
    assert truth and len(truth) < len(paths)
    assert _directory_streams(jobs, 1) == truth
    assert _directory_streams(jobs[:10], 1) == [i for i in truth if i < 10]
    # path-likes, and on POSIX paths that are not UTF-8 (a surrogate-escaped byte), too
    odd = tmp_path / ("d\udcff.efsraw" if os.name == "posix" else "d \u00fc.efsraw")
    odd.write_bytes(raw.synthetic_raw(0, directory=True))
    assert _directory_streams([(0, odd), (1, paths[1]), (2, str(odd))], 1) == [0, 2]


def test_probe_on_the_windows_sample(tmp_path, sample):
    p = tmp_path / "sample.efsraw"
    p.write_bytes(sample)
    assert raw.has_unnamed_stream(p) is True


@pytest.mark.parametrize("size", [48 << 20, 10_000])
def test_probe_reads_headers_only(tmp_path, monkeypatch, size):
    """A 48 MiB or a 10,000-byte file stream: the walk reads one 4 KiB
    window, not the ciphertext (a tree restore reads every byte once)."""
    data = raw.synthetic_raw(size, named_streams={"late": 10})
    p = tmp_path / "big.efsraw"
    p.write_bytes(data)
    read = []
    for name in ("read", "pread"):
        if hasattr(os, name):
            real = getattr(os, name)

            def counting(*args, real=real):
                b = real(*args)
                read.append(len(b))
                return b
            monkeypatch.setattr(os, name, counting)
    assert raw.has_unnamed_stream(p) is True
    assert 0 < sum(read) <= 4096


def test_probe_of_a_truncated_stream_is_unknown(tmp_path):
    """Cut anywhere but after a whole stream, the walk says "unknown" (the
    restore then reports the rule and offset), never "a directory"."""
    data = raw.synthetic_raw(5000)
    info = raw.inspect(data)
    data_header = info.streams[0].offset
    p = tmp_path / "t.efsraw"
    for cut in range(len(data)):
        p.write_bytes(data[:cut])
        got = raw.has_unnamed_stream(p)
        if _core.HAVE_POSIX:
            assert _AS_PY[_c_probe(p)[0][0]] is got, cut
        if cut >= data_header + 28 + 14:
            assert got is True, cut       # the ::$DATA header is whole
        elif cut == data_header:
            assert got is False, cut      # a whole $EFS and nothing else: a directory's stream
        else:
            assert got is None, cut


# ---- the default worker count follows the file system ----

def test_filesystem_type_of_tmpfs_and_of_a_missing_path(xattr_dir):
    from efsfast import volume
    assert volume.filesystem_type(xattr_dir) == "tmpfs"
    # a destination that does not exist yet: its nearest existing parent
    assert volume.filesystem_type(xattr_dir / "not" / "yet") == "tmpfs"
    assert volume.default_workers(xattr_dir) == (os.cpu_count() or 1)
