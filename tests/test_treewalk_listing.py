"""The tree walk lists each folder in C on POSIX (_core.list_folder,
efs_listdir.h): the same folders, files and other entries, in the same
order, as os.scandir's is_dir/is_file (follow_symlinks=False) give, and the
same errors for a folder that cannot be listed."""
from __future__ import annotations

import os

import pytest

from efsfast import _core, treewalk

pytestmark = pytest.mark.skipif(os.name == "nt", reason="list_folder is the POSIX side's")


def _by_scandir(path):
    dirs, files, others = [], [], []
    with os.scandir(path) as it:
        for e in sorted(it, key=lambda e: e.name):
            if e.is_dir(follow_symlinks=False):
                dirs.append(e.name)
            elif e.is_file(follow_symlinks=False):
                files.append(e.name)
            else:
                others.append(e.name)
    return dirs, files, others


@pytest.fixture
def mixed(tmp_path):
    """Folders, files, links of every kind, a FIFO, dot names and a name
    that is not UTF-8."""
    for d in ("b-dir", ".hidden-dir", "a dir"):
        (tmp_path / d).mkdir()
    for f in ("z.txt", ".x", "..y", "\u00e9t\u00e9", "a dir.txt"):
        (tmp_path / f).write_bytes(b"x")
    os.symlink("z.txt", tmp_path / "link-to-file")
    os.symlink("b-dir", tmp_path / "link-to-dir")
    os.symlink("nowhere", tmp_path / "dangling")
    os.mkfifo(tmp_path / "fifo")
    fd = os.open(os.fsencode(str(tmp_path)) + b"/not-utf8-\xff", os.O_CREAT | os.O_WRONLY, 0o644)
    os.close(fd)
    return tmp_path


def test_list_folder_tells_entries_apart_as_scandir_does(mixed):
    dirs, files, others, unexamined = _core.list_folder(str(mixed))
    assert unexamined == []
    assert (sorted(dirs), sorted(files), sorted(others)) == _by_scandir(mixed)
    assert "not-utf8-\udcff" in files and "fifo" in others and "link-to-dir" in others


def test_the_walk_gives_what_scandir_gives(mixed):
    (mixed / "b-dir" / "inner").mkdir()
    (mixed / "b-dir" / "inner" / "f").write_bytes(b"")
    errors: list = []
    got = [(f.path, f.dirs, f.files, f.others) for f in treewalk.walk(str(mixed), errors)]
    want = []
    stack = [str(mixed)]
    while stack:
        p = stack.pop()
        d, f, o = _by_scandir(p)
        want.append((p, d, f, o))
        stack.extend(os.path.join(p, x) for x in reversed(d))
    assert got == want and errors == []


@pytest.mark.parametrize("make, kind", [
    (lambda p: p, FileNotFoundError),
    (lambda p: (p.write_bytes(b""), p)[1], NotADirectoryError),
])
def test_a_folder_that_cannot_be_listed_is_an_error_naming_it(tmp_path, make, kind):
    path = make(tmp_path / "x")
    with pytest.raises(kind) as info:
        _core.list_folder(str(path))
    assert info.value.filename == str(path)
    errors: list = []
    assert list(treewalk.walk(str(path), errors)) == []
    assert [p for p, _ in errors] == [str(path)]
    assert "cannot list the folder" in str(errors[0][1])


def test_a_large_folder_is_listed_whole(tmp_path):
    names = [f"f{i:05d}-{'n' * (i % 200)}" for i in range(3000)]   # (the buffers grow)
    for n in names:
        (tmp_path / n).write_bytes(b"")
    dirs, files, others, unexamined = _core.list_folder(str(tmp_path))
    assert sorted(files) == sorted(names) and not (dirs or others or unexamined)
