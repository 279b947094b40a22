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


# ---- plan_folder: a folder's file jobs made in C from its listing ----

def _jobs_by_names(path, src_pre, out_pre, suffix):
    """What plan_folder must give: the listing by names, each file's job
    made as plan_backup's list comprehension makes it."""
    d, f, o = _by_scandir(path)
    return d, [(src_pre + x, f"{out_pre}{x}{suffix}") for x in f], o, []


def test_plan_folder_gives_the_jobs_the_names_give(mixed):
    os.unlink(os.fsencode(str(mixed)) + b"/not-utf8-\xff")     # (below: it is refused)
    pre, out = str(mixed) + "/", "/set/\u00fc/"
    assert _core.plan_folder(str(mixed), pre, out, ".efsraw") == _jobs_by_names(
        mixed, pre, out, ".efsraw")


def test_plan_folder_leaves_names_that_are_not_utf8_to_the_caller(mixed):
    """A name that is not UTF-8 (or a prefix with one): None, and the walk
    lists that folder by names, as before."""
    assert _core.plan_folder(str(mixed), str(mixed) + "/", "/o/", ".efsraw") is None
    assert _core.plan_folder(str(mixed), os.fsdecode(b"/x\xff/"), "/o/", ".e") is None
    folder = next(treewalk.walk(str(mixed), [], file_jobs=lambda p: (p + "/", "/o/", ".e", False)))
    assert folder.jobs is None and "not-utf8-\udcff" in folder.files


@pytest.mark.parametrize("seed", range(5))
def test_plan_folder_orders_names_as_python_sorts_them(tmp_path, seed):
    """Name order in C (bytes) is the order of the names as str, for names
    from every part of Unicode (UTF-8's byte order is its code points')."""
    import random
    rnd = random.Random(seed)
    alphabet = ["a", "B", "_", " ", "\u00e9", "\u00ff", "\u0100", "\u07ff", "\u0800", "\uffee",
                "\U00010000", "\U0001f600", "\U0010fffd", "~", "0"]
    names = set()
    while len(names) < 200:
        names.add("".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 12))))
    for n in names:
        (tmp_path / n).write_bytes(b"")
    dirs, jobs, others, unexamined = _core.plan_folder(str(tmp_path), "s/", "o/", ".x")
    assert [j[0] for j in jobs] == ["s/" + n for n in sorted(names)]
    assert [j[1] for j in jobs] == ["o/" + n + ".x" for n in sorted(names)]


@pytest.mark.parametrize("made", ["in order", "reversed", "shuffled", "one out of order",
                                  "nearly reversed", "reversed, one far off"])
def test_plan_folder_orders_listings_that_come_sorted_or_reversed(made):
    """tmpfs lists a folder newest first: names made in order come
    reversed, and plan_folder turns such a listing round and finishes it
    by insertion instead of sorting it; one made in reverse comes in order.
    Whatever the listing's order, the jobs come in name order."""
    import random
    import tempfile
    if not os.path.isdir("/dev/shm"):
        pytest.skip("needs tmpfs at /dev/shm (its listing order is what is tested)")
    names = [f"f{i:05d}" for i in range(300)] + ["g", "g0", "h\u00e9", "h\U0001f600"]
    order = {"in order": names, "reversed": names[::-1],
             "shuffled": random.Random(7).sample(names, len(names)),
             "one out of order": names[1:] + names[:1],
             # (as two workers make them: neighbours swapped)
             "nearly reversed": [names[i ^ 1] for i in range(len(names))][::-1],
             "reversed, one far off": names[:0:-1][:150] + names[:1] + names[:0:-1][150:]}[made]
    with tempfile.TemporaryDirectory(dir="/dev/shm") as d:
        for n in reversed(order):       # (newest first: listed as ``order``)
            open(os.path.join(d, n), "wb").close()
        if made != "shuffled" and os.listdir(d) != order:
            pytest.skip("/dev/shm does not list newest first here")
        dirs, jobs, others, unexamined = _core.plan_folder(d, "s/", "o/", "")
    assert [j[0] for j in jobs] == ["s/" + n for n in sorted(names)]


def test_a_backup_plan_is_the_same_with_and_without_plan_folder(mixed, monkeypatch):
    """backup-tree's plan (every file a job) from the C jobs equals the one
    made from the names."""
    from efsfast import tree
    os.unlink(os.fsencode(str(mixed)) + b"/not-utf8-\xff")
    (mixed / "b-dir" / "inner").mkdir()
    (mixed / "b-dir" / "inner" / "f \u00fc").write_bytes(b"")
    real, made = _core.plan_folder, []
    monkeypatch.setattr(_core, "plan_folder", lambda *a: made.append(real(*a)) or made[-1])
    with_c = tree.plan_backup(str(mixed), "/set", [], classify=False)
    assert len(made) == 5 and None not in made      # (every folder's jobs made in C)
    monkeypatch.setattr(_core, "plan_folder", lambda *a: None)
    by_names = tree.plan_backup(str(mixed), "/set", [], classify=False)
    assert with_c == by_names and with_c[1]


def test_plan_folder_gives_a_restores_jobs_for_raw_streams_only(tmp_path):
    """restore: each file whose name ends with the suffix is a job (target
    without it, then the raw stream), in name order; other files, and
    folders whose names end with it, are no jobs."""
    names = ["b.efsraw", "a.efsraw", "\u00e9.efsraw", ".efsraw", "x.efsraw.txt", "efsraw",
             "c.EFSRAW", "d.efsra"]
    for n in names:
        (tmp_path / n).write_bytes(b"")
    (tmp_path / "sub.efsraw").mkdir()
    dirs, jobs, others, unexamined = _core.plan_folder(str(tmp_path), "s/", "/t/\u00fc/",
                                                       ".efsraw", True)
    want = [(f"/t/\u00fc/{n[:-7]}", "s/" + n) for n in sorted(names) if n.endswith(".efsraw")]
    assert jobs == want and len(jobs) == 4
    assert dirs == ["sub.efsraw"] and not (others or unexamined)


def test_a_restore_plan_is_the_same_with_and_without_plan_folder(tmp_path, monkeypatch):
    """restore-tree's plan from the C jobs equals the one made from the
    names: folders' streams told apart, targets below the destination."""
    from efsfast import raw, tree
    src = tmp_path / "src"
    (src / "Docs" / "inner").mkdir(parents=True)
    (src / "Docs.efsraw").write_bytes(raw.synthetic_raw(0, directory=True))
    for rel in ("a.efsraw", "Docs/b \u00fc.efsraw", "Docs/inner/c.efsraw", "Docs/notes.txt"):
        (src / rel).write_bytes(raw.synthetic_raw(100))
    real, made = _core.plan_folder, []
    monkeypatch.setattr(_core, "plan_folder", lambda *a: made.append(real(*a)) or made[-1])
    with_c = tree.plan_restore(str(src), "/dest", [])
    assert len(made) == 3 and None not in made      # (every folder's jobs made in C)
    monkeypatch.setattr(_core, "plan_folder", lambda *a: None)
    by_names = tree.plan_restore(str(src), "/dest", [])
    assert with_c == by_names
    assert with_c == ([("/dest/Docs", str(src / "Docs.efsraw"), {"directory": True})],
                      [("/dest/a", str(src / "a.efsraw")),
                       ("/dest/Docs/b \u00fc", str(src / "Docs/b \u00fc.efsraw")),
                       ("/dest/Docs/inner/c", str(src / "Docs/inner/c.efsraw"))])
