"""The header walk that tells a file's raw stream from a directory's without
reading the ciphertext (tree restores read every source byte once)."""
import os

import pytest
from hypothesis import given, settings, strategies as st

from efsfast import raw


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
