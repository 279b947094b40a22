"""The plain (unencrypted) folders a set records lines for: every folder
between the source and an object that is not itself an encrypted folder
of the backup, each once (writer._plain_folders, whose folders are found
in C), checked against a plain statement of that rule."""
import os

from hypothesis import given, settings, strategies as st

from efsfast.backupset import writer
from efsfast.backupset.manifest import Kind

SRC = os.path.join(os.sep, "src", "top")
names = st.sampled_from(["a", "b", "c d", "ü"])
rels = st.lists(names, min_size=1, max_size=4).map("/".join)


def _job(rel, folder=False):
    path = os.path.join(SRC, *rel.split("/"))
    return (path, path + ".efsraw", {"directory": True}) if folder else (path, path + ".efsraw")


def _rule(jobs, dirs):
    encrypted = {os.path.relpath(j[0], SRC).replace(os.sep, "/") for j in dirs}
    out = set()
    for j in jobs:
        parts = os.path.relpath(j[0], SRC).replace(os.sep, "/").split("/")[:-1]
        out.update("/".join(parts[:k]) for k in range(1, len(parts) + 1))
    return out - encrypted


class _Sink:
    def __init__(self):
        self.lines = []

    def add_entry(self, e):
        self.lines.append(e)


@settings(max_examples=300, deadline=None)
@given(st.lists(rels, max_size=12), st.lists(rels, max_size=6))
def test_each_folder_between_the_source_and_an_object_once(files, folders):
    dirs = [_job(r, folder=True) for r in sorted(set(folders))]
    jobs = dirs + [_job(r) for r in files]
    sink = _Sink()
    captured = []
    real = writer._meta.capture
    writer._meta.capture = lambda path, kind: captured.append(path) or {"source": "posix"}
    try:
        writer._plain_folders(SRC, jobs, dirs, writer._meta.MetaSource.POSIX, sink)
    finally:
        writer._meta.capture = real
    got = [e.path for e in sink.lines]
    assert got == sorted(_rule(jobs, dirs))         # each once, in name order
    assert all(e.kind is Kind.PLAIN_DIRECTORY for e in sink.lines)
    assert captured == [os.path.join(SRC, *r.split("/")) for r in got]
