"""Backup sets on the POSIX system side (tmpfs with user xattrs): the
manifest, restore with metadata, verify-set, tar streams and incremental
sets.  The same on real ntfs-3g volumes: test_backupset_ntfs3g.py."""
import hashlib
import io
import json
import os
import subprocess
import sys
import signal
import tarfile

import pytest

import efsfast
from efsfast import cli
from efsfast._errors import RefusedError
from efsfast.backupset import (MANIFEST_NAME, FolderSink, TarSink, backup_set, read_manifest,
                               restore_stream, verify_set)
from efsfast.backupset.manifest import PARTIAL_NAME, ManifestError

from conftest import listing


def make_tree(root, seed=1):
    """An encrypted folder holding files, a plain folder holding files (one
    with a named stream), a plain file that is not backed up."""
    (root / "plain").mkdir(parents=True)
    efsfast.restore(root / "Docs", efsfast.synthetic_raw(0, directory=True, seed=seed),
                    directory=True)
    objects = {"Docs": None}
    for i, size in enumerate([0, 1, 4095, 70_000, 300_000]):
        rel = f"Docs/f{i}.bin" if i % 2 else f"plain/f{i}.bin"
        streams = {"alt": 700} if i == 3 else None
        efsfast.restore(root / rel, efsfast.synthetic_raw(size, named_streams=streams,
                                                          seed=seed * 10 + i))
        objects[rel] = None
    (root / "plain" / "notes.txt").write_text("not encrypted")
    times = {}
    for n, rel in enumerate(sorted(objects) + ["plain"]):     # the plain folder last
        os.utime(root / rel, ns=(1_600_000_000_000_000_000 + n, 1_500_000_000_000_000_000 + n))
        times[rel] = (1_600_000_000_000_000_000 + n, 1_500_000_000_000_000_000 + n)
    return times


def raw_streams(root):
    """{relative path: raw stream} of every encrypted object below root."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            if efsfast.tree.is_encrypted(p):
                out[os.path.relpath(p, root)] = efsfast.backup(p, directory=os.path.isdir(p))
    return out


def efs(*args, **kw):
    return subprocess.run([sys.executable, "-m", "efsfast", *args], capture_output=True, **kw)


def test_folder_set_round_trip_with_times(xattr_dir, capsys):
    src, out, dest = xattr_dir / "src", xattr_dir / "set", xattr_dir / "dest"
    times = make_tree(src)
    assert cli.main(["backup-tree", str(src), str(out), "--quiet"]) == 0
    m = read_manifest(out / MANIFEST_NAME)
    assert m.header.metadata_source == "posix" and m.header.source == str(src)
    assert sorted(e.path for e in m.entries) == sorted(times)
    assert m.by_path()["plain"].kind.value == "plain-directory"   # metadata only
    for e in m.entries:
        if not e.has_stream:
            continue
        data = (out / e.stored_name).read_bytes()
        assert (e.raw_size, e.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert e.meta["mtime_ns"] == times[e.path][1]
    assert cli.main(["restore-tree", str(out), str(dest), "--quiet"]) == 0
    for rel, (atime, mtime) in times.items():    # folders too: set after their contents
        st = os.stat(dest / rel)
        # reading a folder (the backup's walk) moves its atime before it is captured
        assert st.st_mtime_ns == mtime, rel
        assert st.st_atime_ns == atime or os.path.isdir(dest / rel), rel
    assert raw_streams(dest) == raw_streams(src)


def test_manifest_checks_without_efsfast(xattr_dir):
    """The manifest is JSON lines; its end line's hash is sha256 over the
    lines before it (what `head -n -1 | sha256sum` computes)."""
    src, out = xattr_dir / "src", xattr_dir / "set"
    make_tree(src)
    backup_set(src, FolderSink(str(out)))
    lines = (out / MANIFEST_NAME).read_bytes().splitlines(keepends=True)
    head, end = json.loads(lines[0]), json.loads(lines[-1])
    assert (head["format"], head["version"], head["efsfast_version"]) == (
        "efsfast-set", 1, efsfast.__version__)
    assert end["manifest_sha256"] == hashlib.sha256(b"".join(lines[:-1])).hexdigest()
    assert end["objects"] == len(lines) - 2
    p = subprocess.run(f"head -n -1 {out / MANIFEST_NAME} | sha256sum", shell=True,
                       capture_output=True, text=True, check=True)
    assert p.stdout.split()[0] == end["manifest_sha256"]


def test_no_metadata_restores_content_only(xattr_dir):
    src, out, dest = xattr_dir / "src", xattr_dir / "set", xattr_dir / "dest"
    times = make_tree(src)
    assert cli.main(["backup-tree", str(src), str(out), "--quiet"]) == 0
    assert cli.main(["restore-tree", str(out), str(dest), "--quiet", "--no-metadata"]) == 0
    assert raw_streams(dest) == raw_streams(src)
    assert os.stat(dest / "Docs/f1.bin").st_mtime_ns != times["Docs/f1.bin"][1]


def test_legacy_folder_without_manifest_still_restores(xattr_dir):
    src, out, dest = xattr_dir / "src", xattr_dir / "set", xattr_dir / "dest"
    make_tree(src)
    assert cli.main(["backup-tree", str(src), str(out), "--quiet"]) == 0
    os.unlink(out / MANIFEST_NAME)
    assert cli.main(["restore-tree", str(out), str(dest), "--quiet"]) == 0
    assert raw_streams(dest) == raw_streams(src)


@pytest.mark.parametrize("damage", ["flipped byte", "missing object", "extra object",
                                    "edited manifest", "truncated object"])
def test_verify_set_names_each_problem(xattr_dir, capsys, damage):
    src, out = xattr_dir / "src", xattr_dir / "set"
    make_tree(src)
    assert cli.main(["backup-tree", str(src), str(out), "--quiet"]) == 0
    assert cli.main(["verify-set", str(out)]) == 0
    assert "OK, 6 objects" in capsys.readouterr().out
    victim = out / "plain" / "f4.bin.efsraw"
    if damage == "flipped byte":
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0x01
        victim.write_bytes(data)
        expect = ["plain/f4.bin.efsraw", "SHA-256 differs"]
    elif damage == "missing object":
        victim.unlink()
        expect = ["plain/f4.bin.efsraw", "missing from the set"]
    elif damage == "extra object":
        (out / "plain" / "stray.efsraw").write_bytes(victim.read_bytes())
        expect = ["plain/stray.efsraw", "not in its manifest"]
    elif damage == "edited manifest":
        text = (out / MANIFEST_NAME).read_text()
        (out / MANIFEST_NAME).write_text(text.replace('"raw_size":', '"raw_size":1', 1))
        expect = [MANIFEST_NAME, "changed after it was written"]
    else:
        victim.write_bytes(victim.read_bytes()[:-100])
        expect = ["plain/f4.bin.efsraw", "does not validate", "SHA-256 differs"]
    assert cli.main(["verify-set", str(out), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"]
    text = json.dumps(report["failures"])
    for word in expect:
        assert word in text, (word, report)


def interrupted_backup(src, sink, after: int) -> None:
    """A backup cancelled (as Ctrl-C does) once ``after`` objects are done."""
    token = efsfast.CancelToken()
    with pytest.raises(KeyboardInterrupt):
        backup_set(src, sink, workers=1, cancel=token,
                   progress=lambda f, b, t: f >= after and token.cancel())


def test_interrupted_folder_backup_leaves_no_manifest(xattr_dir):
    src, out = xattr_dir / "src", xattr_dir / "set"
    make_tree(src)
    interrupted_backup(src, FolderSink(str(out)), after=1)
    assert MANIFEST_NAME not in listing(out)
    assert not [n for n in listing(out) if n.endswith(".tmp")]
    assert not verify_set(out).ok


def test_tar_stream_round_trip_through_pipes(xattr_dir):
    src, dest = xattr_dir / "src", xattr_dir / "dest"
    times = make_tree(src)
    backup = subprocess.Popen([sys.executable, "-m", "efsfast", "backup-tree", str(src), "-"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    restore = subprocess.run([sys.executable, "-m", "efsfast", "restore-tree", "-", str(dest)],
                             stdin=backup.stdout, capture_output=True, text=True)
    backup.stdout.close()
    assert backup.wait() == 0, backup.stderr.read()
    assert b"backup-tree: 6 done" in backup.stderr.read()     # the summary is on stderr
    assert restore.returncode == 0, restore.stderr
    assert raw_streams(dest) == raw_streams(src)
    for rel, (atime, mtime) in times.items():
        assert os.stat(dest / rel).st_mtime_ns == mtime, rel


def test_tar_stream_lists_with_tar_and_extracts_to_a_folder_set(xattr_dir):
    src = xattr_dir / "src"
    make_tree(src)
    (xattr_dir / "set.tar").write_bytes(efs("backup-tree", str(src), "-", check=True).stdout)
    listed = subprocess.run(["tar", "-tf", str(xattr_dir / "set.tar")], capture_output=True,
                            text=True, check=True)
    assert listed.stderr == ""                           # no unknown-keyword warnings
    assert listed.stdout.split()[-1] == MANIFEST_NAME
    assert "Docs.efsraw" in listed.stdout.split() and "plain/f4.bin.efsraw" in listed.stdout
    (xattr_dir / "x").mkdir()
    subprocess.run(["tar", "-xf", str(xattr_dir / "set.tar"), "-C", str(xattr_dir / "x")],
                   check=True)
    assert verify_set(xattr_dir / "x").ok               # tar -x gives a folder set


def test_truncated_tar_names_the_last_whole_object(xattr_dir):
    src, dest = xattr_dir / "src", xattr_dir / "dest"
    make_tree(src)
    data = efs("backup-tree", str(src), "-", "--workers", "1", check=True).stdout
    names = [m.name for m in tarfile.open(fileobj=io.BytesIO(data))]
    # cut inside the member after the fourth
    offsets = [m.offset_data for m in tarfile.open(fileobj=io.BytesIO(data))]
    cut = data[:offsets[4] + 100]
    p = efs("restore-tree", "-", str(dest), input=cut, text=False)
    assert p.returncode == 1
    err = p.stderr.decode()
    whole = names[3][:-len(".efsraw")]
    assert "truncated" in err and f"the last whole object was {whole}" in err, err
    assert names[4] in err
    leftovers = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs]
    assert not [f for f in leftovers if f.endswith(".tmp")]
    assert not os.path.lexists(dest / names[4][:-len(".efsraw")])    # nothing partial
    # cut between members: the manifest never came
    starts = [m.offset for m in tarfile.open(fileobj=io.BytesIO(data))]
    p = efs("restore-tree", "-", str(xattr_dir / "d2"), input=data[:starts[4]])
    assert p.returncode == 1 and b"ended before its manifest" in p.stderr, p.stderr
    assert f"the last whole object was {whole}".encode() in p.stderr
    # cut inside a member's header
    p = efs("restore-tree", "-", str(xattr_dir / "d3"), input=data[:starts[4] + 700])
    assert p.returncode == 1 and b"after " + names[3].encode() in p.stderr, p.stderr


def test_interrupted_stream_is_seen_as_truncated(xattr_dir):
    src, dest = xattr_dir / "src", xattr_dir / "dest"
    make_tree(src)
    buf = io.BytesIO()
    interrupted_backup(src, TarSink(buf), after=3)
    buf.seek(0)
    with pytest.raises(efsfast.backupset.TruncatedStreamError, match="before its manifest"):
        restore_stream(buf, dest)


def test_large_objects_stream_without_holding_them(xattr_dir):
    """Objects over the memory limit are exported twice (size and hash, then
    the data into the tar through a bounded queue)."""
    src, dest = xattr_dir / "src", xattr_dir / "dest"
    make_tree(src)
    buf = io.BytesIO()
    r = backup_set(src, TarSink(buf, memory_limit=1000), workers=2)
    assert r.bulk.ok
    buf.seek(0)
    assert restore_stream(buf, dest).bulk.ok
    assert raw_streams(dest) == raw_streams(src)


def test_incremental_set_stores_only_changes_and_names_missing_sets(xattr_dir, capsys):
    src, full, inc = xattr_dir / "src", xattr_dir / "full", xattr_dir / "inc"
    make_tree(src)
    assert cli.main(["backup-tree", str(src), str(full), "--quiet"]) == 0
    efsfast.restore(src / "Docs" / "f1.bin", efsfast.synthetic_raw(9000, seed=99),
                    overwrite=True)
    efsfast.restore(src / "Docs" / "new.bin", efsfast.synthetic_raw(10, seed=98))
    capsys.readouterr()
    assert cli.main(["backup-tree", str(src), str(inc), "--since", str(full), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    # Docs changed too: a new file in a folder moves the folder's change time
    assert summary["counts"]["unchanged"] == 4
    stored = sorted(os.path.relpath(os.path.join(d, f), inc) for d, _, fs in os.walk(inc)
                    for f in fs)
    assert stored == ["Docs.efsraw", "Docs/f1.bin.efsraw", "Docs/new.bin.efsraw",
                      MANIFEST_NAME]
    assert verify_set(inc).ok
    # the full set moved away: restore and verify name it
    moved = xattr_dir / "moved"
    os.rename(full, moved)
    # refused before any work (exit 2), named against the set given
    assert cli.main(["restore-tree", str(inc), str(xattr_dir / "d1"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and read_manifest(moved / MANIFEST_NAME).header.set_id in err
    assert f"{inc}: " in err and not (xattr_dir / "d1").exists()
    assert not verify_set(inc).ok
    assert cli.main(["restore-tree", str(inc), str(xattr_dir / "d2"), "--quiet",
                     "--with", str(moved)]) == 0
    assert raw_streams(xattr_dir / "d2") == raw_streams(src)
    # an incremental set through a pipe, its references from the folder set
    data = efs("backup-tree", str(src), "-", "--since", str(moved), check=True).stdout
    p = efs("restore-tree", "-", str(xattr_dir / "d3"), "--with", str(moved), input=data)
    assert p.returncode == 0, p.stderr
    assert raw_streams(xattr_dir / "d3") == raw_streams(src)


def test_a_chain_of_incremental_sets_refers_to_where_the_data_is(xattr_dir):
    src = xattr_dir / "src"
    make_tree(src)
    backup_set(src, FolderSink(str(xattr_dir / "s1")))
    backup_set(src, FolderSink(str(xattr_dir / "s2")), since=str(xattr_dir / "s1"))
    r = backup_set(src, FolderSink(str(xattr_dir / "s3")), since=str(xattr_dir / "s2"))
    assert r.unchanged == 6
    m1 = read_manifest(xattr_dir / "s1" / MANIFEST_NAME)
    m3 = read_manifest(xattr_dir / "s3" / MANIFEST_NAME)
    assert {e.ref for e in m3.entries if e.has_stream} == {m1.header.set_id}
    assert verify_set(xattr_dir / "s3").ok
    assert cli.main(["restore-tree", str(xattr_dir / "s3"), str(xattr_dir / "d"),
                     "--quiet"]) == 0
    assert raw_streams(xattr_dir / "d") == raw_streams(src)


def test_a_manifest_must_be_whole(tmp_path):
    (tmp_path / "m").write_bytes(b'{"type":"set","format":"efsfast-set","version":1}\n')
    with pytest.raises(ManifestError, match="line 1"):
        read_manifest(tmp_path / "m")


def test_backup_into_an_existing_set_is_refused(xattr_dir, capsys):
    src, out = xattr_dir / "src", xattr_dir / "set"
    make_tree(src)
    assert cli.main(["backup-tree", str(src), str(out), "--quiet"]) == 0
    before = (out / MANIFEST_NAME).read_bytes()
    assert cli.main(["backup-tree", str(src), str(out), "--quiet"]) == 2   # refused
    assert "already there" in capsys.readouterr().err
    assert (out / MANIFEST_NAME).read_bytes() == before


def big_tree(root, n=12, size=2 << 20):
    root.mkdir()
    for i in range(n):
        efsfast.restore(root / f"big{i:02d}", efsfast.synthetic_raw(size, seed=i))


@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_during_streamed_backup_leaves_a_visibly_truncated_stream(xattr_dir, workers):
    src = xattr_dir / "src"
    big_tree(src)
    p = subprocess.Popen([sys.executable, "-m", "efsfast", "backup-tree", str(src), "-",
                          "--buffer-size", "512", "--workers", workers],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = p.stdout.read(3 << 20)                 # well into the stream
    p.send_signal(signal.SIGINT)
    rest = p.stdout.read()
    err = p.stderr.read().decode()
    assert p.wait() == 130, err
    assert "interrupted" in err
    data = head + rest
    assert MANIFEST_NAME.encode() not in data
    r = efs("restore-tree", "-", str(xattr_dir / "dest"), input=data)
    assert r.returncode == 1 and b"truncated" in r.stderr, r.stderr
    for name in listing(xattr_dir / "dest"):       # what came through is whole
        assert not name.endswith(".tmp")
        assert efsfast.backup(xattr_dir / "dest" / name) == efsfast.backup(src / name)


def test_ctrl_c_during_streamed_restore_leaves_nothing_partial(xattr_dir):
    src, dest = xattr_dir / "src", xattr_dir / "dest"
    big_tree(src)
    data = efs("backup-tree", str(src), "-", check=True).stdout
    p = subprocess.Popen([sys.executable, "-m", "efsfast", "restore-tree", "-", str(dest),
                          "--buffer-size", "512"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(data[:len(data) // 2])
    p.stdin.flush()
    while not os.path.isdir(dest) or not listing(dest):
        if p.poll() is not None:
            break
    p.send_signal(signal.SIGINT)
    try:
        p.stdin.write(data[len(data) // 2:])
        p.stdin.close()
    except BrokenPipeError:
        pass
    out, err = p.communicate()
    assert p.returncode == 130, (out, err)
    names = listing(dest)
    assert len(names) < 12 and not [n for n in names if ".tmp" in n], names
    for name in names:
        assert efsfast.backup(dest / name) == efsfast.backup(src / name)


def test_verify_set_runs_the_decryptability_proof_on_each_object(xattr_dir):
    """The --key hook: ``prove`` sees every object that passed the other
    checks and its answer becomes a named problem."""
    src, out = xattr_dir / "src", xattr_dir / "set"
    make_tree(src)
    backup_set(src, FolderSink(str(out)))
    seen = []

    def prove(paths):
        seen.extend(paths)
        # (the name only: the temporary folder's random name may hold "f1")
        return [None if "f1" not in os.path.basename(p) else "no key opens it" for p in paths]
    (out / "plain" / "f0.bin.efsraw").unlink()
    r = verify_set(out, prove=prove)
    assert len(seen) == 5 and not any("f0.bin" in p for p in seen)
    assert sorted((p.path, p.message.split(":")[0]) for p in r.problems) == [
        ("Docs/f1.bin.efsraw", "not decryptable with the given key(s)"),
        ("plain/f0.bin.efsraw", "missing from the set")]
    assert r.objects == 4


def test_verify_set_key_without_decryption_support_says_so(xattr_dir, capsys, monkeypatch):
    # a build without the decryption package: its modules cannot be imported
    for name in ("efsfast.crypto", "efsfast.cli.crypto", "efsfast.crypto.keys",
                 "efsfast.crypto.verify"):
        monkeypatch.setitem(sys.modules, name, None)
    src, out = xattr_dir / "src", xattr_dir / "set"
    make_tree(src)
    backup_set(src, FolderSink(str(out)))
    assert cli.main(["verify-set", str(out), "--key", str(out / MANIFEST_NAME)]) == 2
    assert "needs decryption support" in capsys.readouterr().err


def test_resume_an_interrupted_folder_backup(xattr_dir):
    src, out = xattr_dir / "src", xattr_dir / "set"
    make_tree(src)
    interrupted_backup(src, FolderSink(str(out)), after=2)
    r = backup_set(src, FolderSink(str(out)), skip_existing=True)
    assert r.bulk.ok and len(r.existing) >= 2
    assert verify_set(out).ok
    assert len(read_manifest(out / MANIFEST_NAME).entries) == 7      # 6 objects, 1 plain folder


def test_a_stream_member_cannot_leave_the_destination(xattr_dir):
    raw = efsfast.synthetic_raw(10, seed=1)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        ti = tarfile.TarInfo("../escape.efsraw")
        ti.size = len(raw)
        ti.pax_headers = {"comment": json.dumps({
            "type": "object", "path": "../escape", "kind": "file", "raw_size": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest()})}
        t.addfile(ti, io.BytesIO(raw))
    buf.seek(0)
    with pytest.raises(OSError, match="leaves the destination"):
        restore_stream(buf, xattr_dir / "dest")
    assert not os.path.lexists(xattr_dir / "escape")


@pytest.mark.parametrize("damage", ["none", "flipped byte", "truncated", "edited manifest"])
def test_verify_set_reads_a_stream(xattr_dir, damage):
    """verify-set - checks a tar stream as it flows (e.g. zstd -d | efsfast verify-set -)."""
    src = xattr_dir / "src"
    make_tree(src)
    data = bytearray(efs("backup-tree", str(src), "-", check=True).stdout)
    members = list(tarfile.open(fileobj=io.BytesIO(bytes(data))))
    victim = next(m for m in members if m.name == "plain/f4.bin.efsraw")
    manifest = members[-1]
    if damage == "flipped byte":
        data[victim.offset_data + victim.size // 2] ^= 0x01
        expect = "plain/f4.bin.efsraw: SHA-256 differs"
    elif damage == "truncated":
        data = data[:victim.offset_data + 1000]
        expect = "truncated"
    elif damage == "edited manifest":
        at = data.index(b'"raw_size":', manifest.offset_data)
        data[at + 11:at + 12] = b"9" if data[at + 11:at + 12] != b"9" else b"8"
        expect = "changed after it was written"
    p = efs("verify-set", "-", input=bytes(data), text=False)
    out = p.stdout.decode()
    if damage == "none":
        assert p.returncode == 0 and "OK, 6 objects" in out, out
    else:
        assert p.returncode == 1 and expect in out, out


def test_a_killed_backup_resumes_to_a_clean_set(xattr_dir):
    """SIGKILL gives no chance to clean up: the killed run leaves its
    partial manifest (an incomplete set, maybe cut mid-line), the resumed
    run takes its place and removes what was half-written, and the set
    verifies."""
    src, out = xattr_dir / "src", xattr_dir / "set"
    big_tree(src, n=6)
    p = subprocess.Popen([sys.executable, "-m", "efsfast", "backup-tree", str(src), str(out),
                          "--buffer-size", "512", "--workers", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while not [n for n in (listing(out) if out.exists() else []) if n.endswith(".efsraw")]:
        assert p.poll() is None, p.communicate()
    p.kill()
    p.wait()
    assert PARTIAL_NAME in listing(out) and MANIFEST_NAME not in listing(out)
    assert not read_manifest(out / PARTIAL_NAME, partial=True).complete
    assert cli.main(["backup-tree", str(src), str(out), "--skip-existing", "--quiet"]) == 0
    assert PARTIAL_NAME not in listing(out)
    assert not [n for n in listing(out) if n.endswith(".tmp")], listing(out)
    assert verify_set(out).ok


def test_plain_files_are_skipped_and_progress_counts_objects(xattr_dir):
    """The workers tell encrypted from plain as they open each candidate:
    plain files are reported skipped, never stored or listed, and progress
    counts the set's objects only."""
    src, out = xattr_dir / "src", xattr_dir / "set"
    make_tree(src)
    for i in range(5):
        (src / "Docs" / f"readme{i}.txt").write_text("plain")    # plain, in an encrypted folder
    seen = []
    r = backup_set(src, FolderSink(str(out)), workers=2, progress=lambda *a: seen.append(a))
    assert r.bulk.ok and r.bulk.files == 6 and r.directories == 1
    assert sorted(os.path.relpath(p, src) for p in r.skipped) == sorted(
        ["plain/notes.txt"] + [f"Docs/readme{i}.txt" for i in range(5)])
    assert [j[0] for j in r.jobs] and not any("readme" in j[0] or "notes" in j[0] for j in r.jobs)
    assert seen[-1][0] == seen[-1][2] == 6
    paths = {e.path for e in read_manifest(out / MANIFEST_NAME).entries}
    assert paths == {"Docs", "Docs/f1.bin", "Docs/f3.bin", "plain", "plain/f0.bin",
                     "plain/f2.bin", "plain/f4.bin"}
    assert not [n for n in listing(out / "Docs") if "readme" in n]


BIG = (3 << 20) + 5000       # a stream of several system buffers and a partial block


def test_full_folder_set_runs_in_c_and_matches_the_object_path(xattr_dir, monkeypatch):
    """A full folder set on the POSIX side exports every object in C
    (backupset/bulk.py), hashing each stream in the worker as it is written;
    its manifest lines equal those of the object-by-object path (hashlib),
    large streams (many system buffers) too, and a folder holding only
    plain files leaves no folder in the set."""
    from efsfast.backupset import bulk, writer
    src = xattr_dir / "src"
    make_tree(src)
    efsfast.restore(src / "Docs" / "big.bin", efsfast.synthetic_raw(BIG, seed=7))
    (src / "only-plain").mkdir()
    (src / "only-plain" / "a.txt").write_text("plain")
    calls = []
    real = bulk.backup_bulk
    monkeypatch.setattr(writer, "backup_bulk", lambda *a, **k: calls.append(1) or real(*a, **k))
    c_set = xattr_dir / "c-set"
    r = backup_set(src, FolderSink(str(c_set)), workers=2)
    assert calls == [1] and r.bulk.ok and r.bulk.files == 7
    assert sorted(os.path.relpath(p, src) for p in r.skipped) == ["only-plain/a.txt",
                                                                 "plain/notes.txt"]
    assert not (c_set / "only-plain").exists()
    # the same tree object by object (an incremental-capable path), compared
    monkeypatch.setattr(writer, "backup_bulk", None)
    py_set = xattr_dir / "py-set"
    monkeypatch.setattr(writer, "FolderSink", type("NotFolder", (), {}))   # not eligible
    backup_set(src, FolderSink(str(py_set)), workers=2)
    def strip(e):       # (the first backup's reads move the access times)
        return (e.path, e.kind, e.raw_size, e.sha256, e.source_size, e.efs_sha256,
                {k: v for k, v in e.meta.items() if k != "atime_ns"})
    c_entries = sorted(map(strip, read_manifest(c_set / MANIFEST_NAME).entries))
    assert c_entries == sorted(map(strip, read_manifest(py_set / MANIFEST_NAME).entries))
    assert verify_set(c_set).ok
    big = [e for e in read_manifest(c_set / MANIFEST_NAME).entries if e.path == "Docs/big.bin"]
    assert big[0].raw_size > BIG
    stored = (c_set / "Docs" / "big.bin.efsraw").read_bytes()
    assert big[0].sha256 == hashlib.sha256(stored).hexdigest()


def test_c_folder_set_refuses_to_replace_a_backup_file(xattr_dir, monkeypatch):
    """A folder that already holds a file is refused before any work (no
    set there).  One that appears while the backup runs fails its object as
    such (the C path publishes with link(), which never replaces); the
    others go on."""
    src, out = xattr_dir / "src", xattr_dir / "set"
    make_tree(src)
    (out / "Docs").mkdir(parents=True)
    (out / "Docs" / "f1.bin.efsraw").write_bytes(b"someone else's")
    with pytest.raises(RefusedError, match="not empty and holds no backup set"):
        backup_set(src, FolderSink(str(out)), workers=2)
    assert listing(out) == ["Docs"] and listing(out / "Docs") == ["f1.bin.efsraw"]
    (out / "Docs" / "f1.bin.efsraw").unlink()
    begin = FolderSink.begin

    def begin_then_someone_writes(self, header):
        begin(self, header)
        (out / "Docs" / "f1.bin.efsraw").write_bytes(b"someone else's")
    monkeypatch.setattr(FolderSink, "begin", begin_then_someone_writes)
    r = backup_set(src, FolderSink(str(out)), workers=2)
    assert [os.path.relpath(f.dest, src) for f in r.bulk.failures] == ["Docs/f1.bin"]
    assert r.bulk.failures[0].error.winerror == 80
    assert "exists" in str(r.bulk.failures[0].error)
    assert (out / "Docs" / "f1.bin.efsraw").read_bytes() == b"someone else's"
    assert r.bulk.files == 5 and not [n for n in listing(out / "Docs") if n.endswith(".tmp")]
