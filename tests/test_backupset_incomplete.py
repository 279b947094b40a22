"""Incomplete sets (docs/BACKUP-SETS.md, "The guarantee"): a folder backup
writes its manifest as efsfast-manifest.partial.jsonl while it runs; one
that stops leaves that file, which restore-tree and verify-set recognise
(exit 2 / exit 1 saying so), restore-tree --partial restores what it lists
and backup-tree --skip-existing resumes.  --overwrite leaves no object of
the set it replaces; a folder that holds anything else is refused before
any work.  On tmpfs with user xattrs (the POSIX system side)."""
import hashlib
import json
import os

import pytest

import efsfast
from efsfast import cli
from efsfast._core import CancelToken
from efsfast._errors import RefusedError
from efsfast.backupset import FolderSink, backup_set, read_manifest, verify_set
from efsfast.backupset.manifest import MANIFEST_NAME, PARTIAL_NAME, ManifestError

from conftest import listing
from test_backupset import make_tree, raw_streams


def many(root, n=12, seed=5):
    """n encrypted files of 30-60 KB, half in an encrypted folder, and a
    plain file (a candidate the workers find not encrypted)."""
    root.mkdir()
    efsfast.restore(root / "d", efsfast.synthetic_raw(0, directory=True, seed=seed),
                    directory=True)
    for i in range(n):
        rel = f"d/f{i:02d}" if i % 2 else f"f{i:02d}"
        efsfast.restore(root / rel, efsfast.synthetic_raw(30_000 + 2_500 * i, seed=seed + i))
    (root / "plain.txt").write_text("not encrypted")


class _StopsAfter(FolderSink):
    """A folder sink that cancels the backup (as Ctrl-C does) once it has
    recorded ``after`` objects."""

    def __init__(self, dest, after, token):
        super().__init__(dest)
        self.after, self.token, self.seen = after, token, 0

    def add_entry(self, entry):
        super().add_entry(entry)
        self.seen += entry.has_stream
        if self.seen >= self.after:
            self.token.cancel()


def interrupted(src, out, after):
    """backup_set stopped (as by Ctrl-C) once ``after`` objects are done;
    returns the account the KeyboardInterrupt carries.  (--skip-existing
    into a new folder takes the object-by-object path; the C path of a full
    set is too quick to stop in mid-run here, and is stopped by SIGINT at
    many points in test_interrupts.py.)"""
    token = CancelToken()
    with pytest.raises(KeyboardInterrupt) as ei:
        backup_set(src, _StopsAfter(str(out), after, token), workers=1, cancel=token,
                   skip_existing=True)
    return ei.value.tree


def stored(out):
    """{relative raw stream name: bytes} of every object in the set folder."""
    found = {}
    for dirpath, _dirs, files in os.walk(out):
        for n in files:
            if n.endswith(".efsraw"):
                p = os.path.join(dirpath, n)
                found[os.path.relpath(p, out)] = open(p, "rb").read()
    return found


def run(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_interrupted_backup_is_an_incomplete_set_until_resumed(xattr_dir, capsys):
    src, out, dest = xattr_dir / "src", xattr_dir / "set", xattr_dir / "dest"
    many(src)
    r = interrupted(src, out, 4)
    assert MANIFEST_NAME not in listing(out) and PARTIAL_NAME in listing(out)
    m = read_manifest(out / PARTIAL_NAME, partial=True)
    assert not m.complete and m.reason == "interrupted"
    with pytest.raises(ManifestError, match="not complete"):
        read_manifest(out / PARTIAL_NAME)
    # it lists exactly what is whole in the set, and the account says so
    on_disk = stored(out)
    listed = {e.stored_name: e for e in m.entries if e.has_stream}
    assert set(listed) == set(on_disk) and 4 <= len(on_disk) < 13
    for name, data in on_disk.items():
        assert (listed[name].raw_size, listed[name].sha256) == (
            len(data), hashlib.sha256(data).hexdigest())
    assert r.bulk.files == len(on_disk) and not r.complete
    assert r.directories == ("d.efsraw" in on_disk)

    # restore-tree refuses it, before any work, and says how to go on
    code, _out, err = run(capsys, "restore-tree", out, dest, "--quiet")
    assert code == 2 and not dest.exists()
    assert "incomplete backup set" in err and f"lists {len(listed)} objects" in err
    assert "--skip-existing" in err and "--partial" in err
    code, rec, _err = run(capsys, "restore-tree", out, dest, "--json")
    rec = json.loads(rec)
    assert code == 2 and rec["ok"] is False and rec["failures"][0]["kind"] == "refused"
    assert rec["failures"][0]["path"] == str(out)

    # verify-set says incomplete and still checks what it lists
    code, text, _err = run(capsys, "verify-set", out)
    assert code == 1 and "incomplete" in text
    code, rec, _err = run(capsys, "verify-set", out, "--json")
    rec = json.loads(rec)
    assert code == 1 and rec["complete"] is False and rec["counts"]["verified"] == len(listed)

    # --partial restores what it lists
    code, rec, _err = run(capsys, "restore-tree", out, dest, "--partial", "--json")
    rec = json.loads(rec)
    assert code == 0 and rec["counts"]["done"] == len(listed) and rec["complete"] is False, rec
    expect = {n[:-len(".efsraw")]: data for n, data in on_disk.items()}
    assert raw_streams(dest) == expect

    # resumed, the set is complete: verify-set and a restore accept it
    code, rec, _err = run(capsys, "backup-tree", src, out, "--skip-existing", "--json")
    rec = json.loads(rec)
    assert code == 0 and rec["complete"] is True and rec["counts"]["done"] == 13, rec
    assert len(rec["skipped"]["existing"]) == len(on_disk)     # kept, not copied again
    assert PARTIAL_NAME not in listing(out) and verify_set(out).ok
    assert run(capsys, "restore-tree", out, xattr_dir / "again", "--quiet")[0] == 0
    assert raw_streams(xattr_dir / "again") == raw_streams(src)


def test_resume_keeps_only_what_the_partial_manifest_vouches_for(xattr_dir, capsys):
    """An object present and listed with its size and SHA-256 is kept; one
    that differs from its line, one that is there but not listed (published
    just before a kill), one whose source changed since: backed up again."""
    src, out = xattr_dir / "src", xattr_dir / "set"
    many(src)
    interrupted(src, out, 6)
    listed = [e for e in read_manifest(out / PARTIAL_NAME, partial=True).entries
              if e.has_stream]
    damaged, changed = [e for e in listed if e.kind.value == "file"][:2]
    data = bytearray((out / damaged.stored_name).read_bytes())
    data[-1] ^= 1
    (out / damaged.stored_name).write_bytes(bytes(data))
    efsfast.restore(src / changed.path, efsfast.synthetic_raw(1234, seed=99), overwrite=True)
    unlisted = next(f"f{i:02d}" for i in range(0, 12, 2)
                    if f"f{i:02d}.efsraw" not in {e.stored_name for e in listed})
    (out / (unlisted + ".efsraw")).write_bytes(b"half of something")
    code, rec, _err = run(capsys, "backup-tree", src, out, "--skip-existing", "--json")
    rec = json.loads(rec)
    assert code == 0, rec
    kept = {os.path.relpath(p, out) for p in rec["skipped"]["existing"]}
    assert kept == {e.stored_name for e in listed} - {damaged.stored_name,
                                                       changed.stored_name}
    assert verify_set(out).ok
    assert run(capsys, "restore-tree", out, xattr_dir / "dest", "--quiet")[0] == 0
    assert raw_streams(xattr_dir / "dest") == raw_streams(src)


def test_overwrite_leaves_no_object_of_the_set_it_replaces(xattr_dir, capsys):
    src, out = xattr_dir / "src", xattr_dir / "set"
    make_tree(src)
    assert run(capsys, "backup-tree", src, out, "--quiet")[0] == 0
    old = read_manifest(out / MANIFEST_NAME)
    os.unlink(src / "Docs" / "f3.bin")           # no longer in the source
    os.unlink(src / "plain" / "f0.bin")
    assert run(capsys, "backup-tree", src, out, "--overwrite", "--quiet")[0] == 0
    new = read_manifest(out / MANIFEST_NAME)
    assert new.header.set_id != old.header.set_id
    assert not (out / "Docs" / "f3.bin.efsraw").exists()
    assert not (out / "plain" / "f0.bin.efsraw").exists()
    assert verify_set(out).ok, verify_set(out).problems
    assert PARTIAL_NAME not in listing(out)


@pytest.mark.parametrize("case", ["unrelated file", "manifest-less set", "another source",
                                  "unlisted file in the set"])
def test_a_folder_that_is_not_this_sources_set_is_refused(xattr_dir, capsys, case):
    src, other, out = xattr_dir / "src", xattr_dir / "other", xattr_dir / "set"
    make_tree(src)
    flags = ["--overwrite"]
    if case == "unrelated file":
        out.mkdir()
        (out / "holiday.jpg").write_bytes(b"jpeg")
        flags = []
        expect = "not empty and holds no backup set (holiday.jpg)"
    elif case == "manifest-less set":
        out.mkdir()
        (out / "old.efsraw").write_bytes(efsfast.synthetic_raw(10, seed=3))
        expect = "not empty and holds no backup set"
    elif case == "another source":
        make_tree(other, seed=2)
        assert run(capsys, "backup-tree", other, out, "--quiet")[0] == 0
        expect = f"a backup set of another source ({other})"
    else:
        assert run(capsys, "backup-tree", src, out, "--quiet")[0] == 0
        (out / "Docs" / "stray.efsraw").write_bytes(b"x")
        expect = "holds files its manifest does not list (Docs/stray.efsraw)"
    before = {p: open(os.path.join(d, p), "rb").read()
              for d, _s, fs in os.walk(out) for p in fs}
    code, _out, err = run(capsys, "backup-tree", src, out, *flags)
    assert code == 2 and expect in err and "nothing was written" in err, err
    code, rec, _err = run(capsys, "backup-tree", src, out, *flags, "--json")
    rec = json.loads(rec)
    (f,) = rec["failures"]
    assert code == 2 and f["kind"] == "refused" and f["path"] and expect in f["error"]
    after = {p: open(os.path.join(d, p), "rb").read()
             for d, _s, fs in os.walk(out) for p in fs}
    assert after == before


def test_a_second_backup_into_a_set_being_written_is_refused(xattr_dir, capsys):
    """The running backup holds a lock on its partial manifest: another run,
    resuming or replacing, is refused naming the file, and the first one's
    file is untouched."""
    import fcntl
    src, out = xattr_dir / "src", xattr_dir / "set"
    make_tree(src)
    sink = FolderSink(str(out))
    from efsfast.backupset.manifest import Header
    sink.check(str(src), resume=False)
    sink.begin(Header.new(str(src), "posix"))            # a backup under way
    try:
        before = (out / PARTIAL_NAME).read_bytes()
        for flags in ([], ["--skip-existing"], ["--overwrite"]):
            code, _o, err = run(capsys, "backup-tree", src, out, *flags)
            assert code == 2 and "another backup is writing" in err, (flags, err)
            assert PARTIAL_NAME in err
        assert (out / PARTIAL_NAME).read_bytes() == before
        with open(out / PARTIAL_NAME, "rb") as f:         # (the lock is the proof)
            with pytest.raises(BlockingIOError):
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        sink.abort("test over")
    assert not read_manifest(out / PARTIAL_NAME, partial=True).complete


def test_a_folder_with_no_manifest_restores_unverified(xattr_dir, capsys):
    src, dest = xattr_dir / "old", xattr_dir / "dest"
    src.mkdir()
    (src / "a.efsraw").write_bytes(efsfast.synthetic_raw(100, seed=1))
    code, text, _err = run(capsys, "restore-tree", src, dest)
    assert code == 0 and "not verified: no manifest" in text
    code, rec, _err = run(capsys, "restore-tree", src, xattr_dir / "d2", "--json")
    rec = json.loads(rec)
    assert code == 0 and rec["verified"] is False and rec["counts"]["done"] == 1


def test_a_set_with_a_manifest_has_no_unverified_note(xattr_dir, capsys):
    src, out = xattr_dir / "src", xattr_dir / "set"
    make_tree(src)
    assert run(capsys, "backup-tree", src, out, "--quiet")[0] == 0
    code, text, _err = run(capsys, "restore-tree", out, xattr_dir / "dest")
    assert code == 0 and "not verified" not in text


def test_reading_a_partial_manifest(tmp_path):
    """What a backup leaves when it stops: an end line saying complete:
    false; no end line (killed); a last line cut mid-way (killed while
    writing it).  A line cut anywhere but last is damage."""
    from efsfast.backupset.manifest import Entry, Header, Kind, ManifestWriter
    import io
    buf = io.BytesIO()
    w = ManifestWriter(buf, Header.new("/src", "posix"))
    for i in range(3):
        w.add(Entry(path=f"f{i}", kind=Kind.FILE, raw_size=i, sha256="0" * 64))
    lines = buf.getvalue()
    w.abort("the destination is full")
    ended = buf.getvalue()
    m = read_manifest(io.BytesIO(ended), partial=True)
    assert (m.complete, m.reason, len(m.entries)) == (False, "the destination is full", 3)
    m = read_manifest(io.BytesIO(lines), partial=True)
    assert (m.complete, m.reason, len(m.entries)) == (False, None, 3)
    cut = lines[:-7]
    m = read_manifest(io.BytesIO(cut), partial=True)
    assert (m.complete, len(m.entries)) == (False, 2)
    damaged = lines.split(b"\n")
    damaged[2] = damaged[2][:-1]                    # f1's line, not the last
    with pytest.raises(ManifestError, match="line 3"):
        read_manifest(io.BytesIO(b"\n".join(damaged)), partial=True)
    with pytest.raises(ManifestError, match="no end line"):
        read_manifest(io.BytesIO(lines))
    # a partial file that is in fact whole (stopped between publishing steps)
    w.finish()
    assert read_manifest(io.BytesIO(lines + buf.getvalue()[len(ended):]), partial=True).complete


def test_a_truncated_stream_reports_what_it_restored(xattr_dir, capsys, monkeypatch):
    """restore-tree - of a stream cut inside a member: the error names the
    last whole object, and the summary and the --json record count the
    objects restored before it (per kind), each whole; exit 1."""
    import io
    import sys
    import tarfile
    from efsfast.backupset import TarSink
    src = xattr_dir / "src"
    make_tree(src)
    buf = io.BytesIO()
    backup_set(src, TarSink(buf), workers=1)
    data = buf.getvalue()
    members = list(tarfile.open(fileobj=io.BytesIO(data)))
    cut = data[:members[4].offset_data + 100]
    whole = [m.name[:-len(".efsraw")] for m in members[:4]]

    class Stdin:
        buffer = io.BytesIO(cut)

        def isatty(self):
            return False
    for flags in ([], ["--json"]):
        dest = xattr_dir / f"dest{len(flags)}"
        Stdin.buffer.seek(0)
        monkeypatch.setattr(sys, "stdin", Stdin())
        code, text, err = run(capsys, "restore-tree", "-", dest, "--quiet", *flags)
        assert code == 1 and f"the last whole object was {whole[-1]}" in err, err
        if flags:
            rec = json.loads(text)
            assert rec["counts"]["done"] == 4 and rec["truncated"] and rec["counts"]["failed"] == 0, rec
            assert rec["counts"]["directories"] == sum(1 for w in whole if (src / w).is_dir())
        else:
            assert "restore-tree: 4 done, 0 failed" in text and "ended early" in text, text
        assert sorted(raw_streams(dest)) == sorted(whole)


def test_an_incomplete_set_is_no_base_for_an_incremental_one(xattr_dir, capsys):
    src, out = xattr_dir / "src", xattr_dir / "set"
    many(src)
    interrupted(src, out, 3)
    code, _o, err = run(capsys, "backup-tree", src, xattr_dir / "inc", "--since", out)
    assert code == 2 and "incomplete set" in err and not (xattr_dir / "inc").exists()


def test_a_manifest_that_cannot_be_published_leaves_an_incomplete_set(xattr_dir, capsys,
                                                                      monkeypatch):
    """The last step fails (here: a manifest appears under the final name
    meanwhile, which is never replaced): the set is left incomplete, its
    partial manifest readable, the other manifest untouched; exit 1."""
    src, out = xattr_dir / "src", xattr_dir / "set"
    make_tree(src)
    publish = FolderSink._publish_manifest

    def someone_was_quicker(self):
        (out / MANIFEST_NAME).write_bytes(b"someone else's")
        publish(self)
    monkeypatch.setattr(FolderSink, "_publish_manifest", someone_was_quicker)
    code, rec, _err = run(capsys, "backup-tree", src, out, "--json")
    rec = json.loads(rec)
    assert code == 1 and rec["complete"] is False and rec["counts"]["done"] == 6, rec
    assert "could not be published" in rec["incomplete_reason"]
    assert (out / MANIFEST_NAME).read_bytes() == b"someone else's"
    m = read_manifest(out / PARTIAL_NAME, partial=True)
    assert not m.complete and "could not be published" in m.reason and len(m.entries) == 7


def test_a_backup_stopped_between_the_two_steps_of_publishing_is_complete(xattr_dir, capsys):
    """Publishing links the partial manifest to its final name, then removes
    the partial name: stopped in between, both names are the one file, and
    the set is complete (a restore, verify-set, and --overwrite take it)."""
    src, out = xattr_dir / "src", xattr_dir / "set"
    make_tree(src)
    assert run(capsys, "backup-tree", src, out, "--quiet")[0] == 0
    os.link(out / MANIFEST_NAME, out / PARTIAL_NAME)
    assert verify_set(out).ok
    assert run(capsys, "restore-tree", out, xattr_dir / "dest", "--quiet")[0] == 0
    assert raw_streams(xattr_dir / "dest") == raw_streams(src)
    assert run(capsys, "backup-tree", src, out, "--overwrite", "--quiet")[0] == 0
    assert PARTIAL_NAME not in listing(out) and verify_set(out).ok
