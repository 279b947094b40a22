"""Backup sets in an S3 bucket (a real SeaweedFS, tests/s3_server.py):
round trips onto ntfs-3g, incrementals across two sets in a bucket, sets
moved by another S3 tool (rclone) both ways, the server stopped mid-backup
and mid-restore, refused keys and missing buckets, two backups racing for
one prefix, and damage in the bucket caught."""
import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

import efsfast
from efsfast import cli
from efsfast.backupset import MANIFEST_NAME, read_manifest, verify_set
from efsfast.backupset.manifest import PARTIAL_NAME
from efsfast.store import Failure, StoreError, open_store

from conftest import S3_BUCKET, needs_posix, use_s3_server

pytestmark = needs_posix


def make_tree(root, sizes=(0, 100, 16384, 70_000, 3 << 20), seed=0):
    """Encrypted files in two folders (efs_raw layout on tmpfs); their
    relative paths."""
    meta = efsfast.synthetic_metadata(seed=1)
    rels = []
    for i, size in enumerate(sizes):
        rel = f"d{i % 2}/f{i}.bin"
        os.makedirs(root / f"d{i % 2}", exist_ok=True)
        block = hashlib.sha256(f"{seed}-{i}".encode()).digest() * ((size + 511) // 32 + 1)
        efsfast.restore(root / rel, efsfast.build_raw(meta, [efsfast.DataStream(
            "::$DATA", size, block[:(size + 511) & ~511])]))
        rels.append(rel)
    return rels


def streams(root, rels):
    return {rel: efsfast.backup(root / rel) for rel in rels}


def keys(url):
    with open_store(url) as st:
        return {o.key for o in st.list()}


def run_cli(*argv):
    return cli.main([*argv, "--quiet"] if argv[0] in ("backup-tree", "restore-tree")
                    else list(argv))


def test_round_trip_verify_and_incremental(xattr_dir, s3_url, capsys):
    src = xattr_dir / "src"
    rels = make_tree(src)
    want = streams(src, rels)
    assert run_cli("backup-tree", str(src), s3_url) == 0
    assert keys(s3_url) == {MANIFEST_NAME} | {r + ".efsraw" for r in rels}
    assert run_cli("verify-set", s3_url) == 0
    assert run_cli("restore-tree", s3_url, str(xattr_dir / "out")) == 0
    assert streams(xattr_dir / "out", rels) == want
    # --since a set in the bucket: nothing copied again, restores whole
    second = s3_url + "-2"
    assert run_cli("backup-tree", str(src), second, "--since", s3_url) == 0
    assert keys(second) == {MANIFEST_NAME}
    with open_store(second) as st:
        m = read_manifest(__import__("io").BytesIO(bytes(st.read(MANIFEST_NAME))))
    assert m.header.since["path"] == s3_url and all(e.ref for e in m.entries if e.has_stream)
    assert run_cli("verify-set", second) == 0
    assert run_cli("restore-tree", second, str(xattr_dir / "out2"), "--jobs", "2") == 0
    assert streams(xattr_dir / "out2", rels) == want
    # a set is never replaced unasked
    capsys.readouterr()
    assert run_cli("backup-tree", str(src), s3_url) == 2
    assert "a backup set is already there" in capsys.readouterr().err


def test_round_trip_onto_ntfs3g_byte_identical(s3_url, tmp_path):
    from ntfs_volume import Volume, why_not
    if why_not():
        pytest.skip(why_not())
    from test_backupset_ntfs3g import make_ntfs_tree, ntfs_values
    made = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            v = Volume(tmp_path / name)
            v.mount()
            made.append(v)
        a, b = made
        rels = make_ntfs_tree(a.mnt)
        want = ntfs_values(a.mnt, rels)
        assert run_cli("backup-tree", str(a.mnt), s3_url) == 0
        assert run_cli("verify-set", s3_url) == 0
        assert run_cli("restore-tree", s3_url, str(b.mnt)) == 0
        assert ntfs_values(b.mnt, rels) == want        # streams, times, attributes, ACLs
    finally:
        for v in made:
            v.unmount()


def test_refused_keys_and_missing_bucket_exit_2_nothing_written(s3_server, xattr_dir, s3_url,
                                                                monkeypatch, capsys):
    src = xattr_dir / "src"
    make_tree(src, sizes=(10,))
    missing = f"s3://no-bucket-{uuid.uuid4().hex[:8]}/set"
    for argv in (("backup-tree", str(src), missing), ("restore-tree", missing, str(xattr_dir)),
                 ("verify-set", missing)):
        capsys.readouterr()
        assert run_cli(*argv) == 2
        assert "the bucket does not exist" in capsys.readouterr().err
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x" + uuid.uuid4().hex)
    assert run_cli("backup-tree", str(src), s3_url) == 2
    err = capsys.readouterr().err
    assert "credentials were refused" in err and "nothing was written" in err
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in err
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.reader.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.reader.secret_access_key)
    assert run_cli("backup-tree", str(src), s3_url) == 2     # may list, may not write
    assert "access denied" in capsys.readouterr().err
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.admin.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.admin.secret_access_key)
    assert keys(s3_url) == set()


def test_damage_in_the_bucket_is_caught(xattr_dir, s3_url, capsys):
    src = xattr_dir / "src"
    rels = make_tree(src)
    assert run_cli("backup-tree", str(src), s3_url) == 0
    key = rels[3] + ".efsraw"
    with open_store(s3_url) as st:
        data = bytearray(st.read(key))
        data[-1] ^= 1
        st.write(key, bytes(data), replace=True)
        st.write("stray.txt", b"not of the set")
    capsys.readouterr()
    assert run_cli("verify-set", s3_url) == 1
    out = capsys.readouterr().out
    assert f"{key}: SHA-256 differs from the manifest's" in out
    assert "stray.txt: in the set but not in its manifest" in out
    dest = xattr_dir / "out"
    assert run_cli("restore-tree", s3_url, str(dest)) == 1
    assert not (dest / rels[3]).exists()                      # nothing of it left
    assert all((dest / r).exists() for r in rels if r != rels[3])
    assert [n for n in os.listdir(dest / "d1") if n.startswith(".")] == []


def test_two_backups_racing_for_one_prefix(xattr_dir, s3_url):
    src = xattr_dir / "src"
    make_tree(src, sizes=(100, 200, 300))
    for n in range(3):      # (the race ends differently from run to run)
        url = f"{s3_url}-{n}"
        efs = [sys.executable, "-m", "efsfast", "backup-tree", "--quiet", str(src), url]
        procs = [subprocess.Popen(efs, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        codes = sorted(r[0] for r in results)
        assert codes == [0, 2], results
        loser = next(err for code, err in results if code == 2)
        assert ("another backup began writing" in loser or "incomplete backup set is there"
                in loser or "a backup set is already there" in loser
                or "another backup wrote a set into this prefix meanwhile" in loser), loser
        assert run_cli("verify-set", url) == 0
        assert PARTIAL_NAME not in keys(url)


def test_a_manifest_gone_between_listing_and_reading_is_looked_for_again(xattr_dir, s3_url):
    """The race above, made to happen every time: the prefix holds an
    incomplete set when the survey lists it, and the other backup publishes
    its set (its in-progress manifest removed) before the survey reads that
    manifest, which the server then answers with 404.  The survey lists
    again and finds the complete set: a backup is refused as "a backup set
    is already there", not with the 404."""
    from efsfast.backupset import s3sink
    src = xattr_dir / "src"
    make_tree(src, sizes=(100, 200))
    assert run_cli("backup-tree", str(src), s3_url) == 0
    with open_store(s3_url) as st:
        manifest = bytes(st.read(MANIFEST_NAME))
        st.write(PARTIAL_NAME, manifest)
        st.remove(MANIFEST_NAME)
        real_read = st.read
        published = []

        def read(key, *args, **kw):
            if key == PARTIAL_NAME and not published:     # the other backup finishes now
                st.write(MANIFEST_NAME, manifest)
                st.remove(PARTIAL_NAME)
                published.append(key)
            return real_read(key, *args, **kw)
        st.read = read
        found = s3sink.survey(st)
    assert published and not found.incomplete
    assert found.manifest is not None and found.manifest.complete
    with pytest.raises(StoreError) as gone:       # (what the survey met on its first look)
        with open_store(s3_url) as st:
            st.read(PARTIAL_NAME)
    assert gone.value.failure is Failure.NOT_FOUND


def _rclone_env(server, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_CA_BUNDLE",)}
    env.update({"RCLONE_CONFIG": str(tmp_path / "rclone.conf"),
                "RCLONE_CONFIG_SEAWEED_TYPE": "s3", "RCLONE_CONFIG_SEAWEED_PROVIDER": "Other",
                "RCLONE_CONFIG_SEAWEED_ENDPOINT": server.endpoint,
                "RCLONE_CONFIG_SEAWEED_ACCESS_KEY_ID": server.admin.access_key_id,
                "RCLONE_CONFIG_SEAWEED_SECRET_ACCESS_KEY": server.admin.secret_access_key,
                "RCLONE_CONFIG_SEAWEED_REGION": "us-east-1"})
    return env


def test_sets_moved_by_another_s3_tool_both_ways(s3_server, xattr_dir, s3_url, tmp_path):
    """A folder set copied into the bucket by rclone restores from there;
    a bucket set copied down by rclone verifies and restores as a folder."""
    rclone = shutil.which("rclone")
    if rclone is None:
        pytest.skip("rclone is not installed (apt-get install rclone)")
    env = _rclone_env(s3_server, tmp_path)
    src = xattr_dir / "src"
    rels = make_tree(src)
    want = streams(src, rels)
    folder = tmp_path / "folder-set"
    assert run_cli("backup-tree", str(src), str(folder)) == 0
    prefix = s3_url[len("s3://"):]
    up = subprocess.run([rclone, "copy", str(folder), f"seaweed:{prefix}"], env=env,
                        capture_output=True, text=True)
    assert up.returncode == 0, up.stderr
    assert run_cli("verify-set", s3_url) == 0
    assert run_cli("restore-tree", s3_url, str(xattr_dir / "out")) == 0
    assert streams(xattr_dir / "out", rels) == want
    bucket_set = s3_url + "-native"
    assert run_cli("backup-tree", str(src), bucket_set) == 0
    down = tmp_path / "downloaded"
    r = subprocess.run([rclone, "copy", f"seaweed:{bucket_set[len('s3://'):]}", str(down)],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert verify_set(down).ok
    assert run_cli("restore-tree", str(down), str(xattr_dir / "out2")) == 0
    assert streams(xattr_dir / "out2", rels) == want


# ---- the server going away (a server of the test's own)


def test_server_stopped_mid_backup_then_resumed(own_s3_server, xattr_dir, monkeypatch, tmp_path,
                                                capsys):
    """The server dies after the third object: the backup names the failed
    objects, says the set is incomplete and exits 1; no manifest is
    published.  With the server back, --skip-existing finishes the set."""
    from efsfast.backupset import s3sink
    src = xattr_dir / "src"
    rels = make_tree(src, sizes=(100, 200, 300, 400, 500, 600))
    want = streams(src, rels)
    url = f"s3://{S3_BUCKET}/mid-backup"
    real = s3sink.StoreSink.store
    calls = []

    def store_then_die(self, raw, entry, digest, *, cancel):
        calls.append(entry.path)
        if len(calls) == 4:
            own_s3_server.stop(grace_s=0)
        return real(self, raw, entry, digest, cancel=cancel)
    monkeypatch.setattr(s3sink.StoreSink, "store", store_then_die)
    capsys.readouterr()
    assert cli.main(["backup-tree", str(src), url, "--quiet", "--workers", "1"]) == 1
    out = capsys.readouterr()
    assert "the set is incomplete (the store stopped answering" in out.out, out
    assert "the store did not answer" in out.out + out.err
    monkeypatch.setattr(s3sink.StoreSink, "store", real)
    own_s3_server.start()
    use_s3_server(own_s3_server, monkeypatch, tmp_path)
    there = keys(url)
    assert MANIFEST_NAME not in there and PARTIAL_NAME in there
    assert run_cli("restore-tree", url, str(xattr_dir / "no")) == 2     # incomplete: refused
    assert run_cli("backup-tree", str(src), url, "--skip-existing") == 0
    assert run_cli("verify-set", url) == 0
    assert keys(url) == {MANIFEST_NAME} | {r + ".efsraw" for r in rels}
    assert run_cli("restore-tree", url, str(xattr_dir / "out")) == 0
    assert streams(xattr_dir / "out", rels) == want


def interrupted_backup(src, url, monkeypatch, *, after):
    """backup-tree of ``src`` into ``url`` on one worker, Ctrl-C after
    ``after`` objects: the paths of those stored."""
    from efsfast.backupset import s3sink
    real = s3sink.StoreSink.store
    calls = []

    def store_then_stop(self, raw, entry, digest, *, cancel):
        if len(calls) == after:
            raise KeyboardInterrupt
        calls.append(entry.path)
        return real(self, raw, entry, digest, cancel=cancel)
    monkeypatch.setattr(s3sink.StoreSink, "store", store_then_stop)
    assert cli.main(["backup-tree", str(src), url, "--quiet", "--workers", "1"]) == 130
    monkeypatch.setattr(s3sink.StoreSink, "store", real)
    return calls


def test_interrupted_backup_resumes_without_uploading_again(xattr_dir, s3_url, monkeypatch,
                                                            capsys):
    """Ctrl-C after three objects: the in-progress manifest is uploaded with
    its end line saying why; --skip-existing keeps those three (same size
    and SHA-256, read back) and uploads only the rest."""
    from efsfast.backupset import s3sink
    src = xattr_dir / "src"
    rels = make_tree(src, sizes=(100, 200, 300, 400, 500))
    real = s3sink.StoreSink.store
    calls = interrupted_backup(src, s3_url, monkeypatch, after=3)
    with open_store(s3_url) as st:
        m = read_manifest(__import__("io").BytesIO(bytes(st.read(PARTIAL_NAME))),
                          partial=True)
    assert not m.complete and m.reason == "interrupted" and len(m.entries) == 3
    uploaded = []

    def count(self, raw, entry, digest, *, cancel):
        uploaded.append(entry.path)
        return real(self, raw, entry, digest, cancel=cancel)
    monkeypatch.setattr(s3sink.StoreSink, "store", count)
    capsys.readouterr()
    assert run_cli("backup-tree", str(src), s3_url, "--skip-existing", "--json") == 0
    assert sorted(uploaded) == sorted(set(rels) - set(calls))
    assert run_cli("verify-set", s3_url) == 0


def test_server_stopped_mid_restore_leaves_nothing_partial(own_s3_server, xattr_dir, monkeypatch):
    """Objects restore in batches; the server dies before the second batch
    is fetched: the first batch is restored whole, every other object is a
    named failure, and nothing of them is at DEST."""
    from efsfast.backupset import storeread
    src = xattr_dir / "src"
    rels = make_tree(src, sizes=(3 << 20,) * 6)
    url = f"s3://{S3_BUCKET}/mid-restore"
    assert run_cli("backup-tree", str(src), url) == 0
    real = storeread._fetch
    fetched, pending = [], []

    def fetch_then_die(batch, limit):
        fetched.append(len(batch))
        if len(fetched) == 3:       # the first two batches are in memory, then it dies
            concurrent.futures.wait(pending)
            own_s3_server.stop(grace_s=0)
        got = real(batch, limit)
        pending.extend(g for g in got if isinstance(g, concurrent.futures.Future))
        return got
    monkeypatch.setattr(storeread, "_fetch", fetch_then_die)
    dest = xattr_dir / "out"
    r = storeread.restore_store_set(url, str(dest), memory_limit=8 << 20, part_size=8 << 20,
                                    retries=1, retry_timeout_s=2)
    assert r.bulk.files == fetched[0] + fetched[1] and r.bulk.failures
    for f in r.bulk.failures:
        assert isinstance(f.error, StoreError) and f.error.failure is Failure.UNAVAILABLE
        assert not os.path.exists(f.dest)
    restored = [rel for rel in rels if (dest / rel).exists()]
    assert len(restored) == fetched[0] + fetched[1]
    leftovers = [n for d in ("d0", "d1") if (dest / d).is_dir()
                 for n in os.listdir(dest / d) if n.startswith(".")]
    assert leftovers == []


def test_decrypt_tree_of_a_set_in_a_bucket(xattr_dir, s3_url, tmp_path, capsys):
    """decrypt-tree s3://…: the plaintext of every object, each checked
    against its manifest line; damage in the bucket is a failed item; an
    incomplete set is refused before any key is read."""
    pytest.importorskip("cryptography", reason="decryption needs the 'cryptography' package")
    from _keys import encrypted_tree
    src = xattr_dir / "src"
    plain = encrypted_tree(src, tmp_path / "alice.pem")
    assert run_cli("backup-tree", str(src), s3_url) == 0
    argv = ["decrypt-tree", "--key", str(tmp_path / "alice.pem"), "--quiet", s3_url]
    assert cli.main(argv + [str(tmp_path / "plain")]) == 0
    for rel, data in plain.items():
        assert (tmp_path / "plain" / rel).read_bytes() == data
    with open_store(s3_url) as st:
        data = bytearray(st.read("Docs/b.bin.efsraw"))
        data[-1] ^= 1
        st.write("Docs/b.bin.efsraw", bytes(data), replace=True)
    capsys.readouterr()
    assert cli.main(argv + [str(tmp_path / "plain2")]) == 1
    text = capsys.readouterr().out
    assert "SHA-256" in text and ".efsfast-stage-" not in text
    assert not (tmp_path / "plain2" / "Docs" / "b.bin").exists()
    # the damaged object is named by its URL, never by the staging copy's path
    assert cli.main(argv + [str(tmp_path / "plain2j"), "--json"]) == 1
    out = capsys.readouterr().out
    (f,) = json.loads(out)["failures"]
    assert f["kind"] == "mismatch" and ".efsfast-stage-" not in out
    assert f["source"] == s3_url.rstrip("/") + "/Docs/b.bin.efsraw"
    assert (tmp_path / "plain2" / "top.txt").read_bytes() == b"top"
    with open_store(s3_url) as st:
        st.remove(MANIFEST_NAME)
        st.write(PARTIAL_NAME, b'{"type":"set"}\n')
    assert cli.main(argv + [str(tmp_path / "plain3")]) == 2
    assert "incomplete" in capsys.readouterr().err


def test_single_objects_to_and_from_a_bucket(xattr_dir, s3_url, capsys):
    src = xattr_dir / "src"
    rels = make_tree(src, sizes=(70_000,))
    url = f"{s3_url}/one/f.efsraw"
    assert cli.main(["backup", str(src / rels[0]), url]) == 0
    capsys.readouterr()
    assert cli.main(["backup", str(src / rels[0]), url]) == 2          # refused: never replaced unasked
    assert "an object is already there" in capsys.readouterr().err
    assert cli.main(["backup", str(src / rels[0]), url, "--overwrite"]) == 0
    assert cli.main(["restore", url, str(xattr_dir / "back.bin")]) == 0
    assert efsfast.backup(xattr_dir / "back.bin") == efsfast.backup(src / rels[0])
    capsys.readouterr()
    assert cli.main(["restore", f"{s3_url}/one/none.efsraw", str(xattr_dir / "x")]) == 2
    assert "no such object" in capsys.readouterr().err
    assert not (xattr_dir / "x").exists()


def test_overwrite_replaces_a_set_of_the_same_source(xattr_dir, s3_url, capsys):
    src = xattr_dir / "src"
    rels = make_tree(src, sizes=(100, 200, 300))
    assert run_cli("backup-tree", str(src), s3_url) == 0
    os.unlink(src / rels[1])
    assert run_cli("backup-tree", str(src), s3_url, "--overwrite") == 0
    assert keys(s3_url) == {MANIFEST_NAME, rels[0] + ".efsraw", rels[2] + ".efsraw"}
    assert run_cli("verify-set", s3_url) == 0
    other = xattr_dir / "other"
    make_tree(other, sizes=(5,))
    capsys.readouterr()
    assert run_cli("backup-tree", str(other), s3_url, "--overwrite") == 2
    assert "a backup set of another source" in capsys.readouterr().err


def test_large_objects_stream_into_multipart_uploads(xattr_dir, s3_url, monkeypatch, capsys):
    """Objects above the in-memory size go up streamed; one whose export
    fails halfway is a failed item and no object (its upload is aborted,
    never completed short)."""
    from efsfast.backupset import s3sink
    monkeypatch.setattr(s3sink, "MEMORY_OBJECT", 1 << 20)
    src = xattr_dir / "src"
    rels = make_tree(src, sizes=(100, 12 << 20))
    want = streams(src, rels)
    assert run_cli("backup-tree", str(src), s3_url) == 0
    assert run_cli("restore-tree", s3_url, str(xattr_dir / "out")) == 0
    assert streams(xattr_dir / "out", rels) == want
    real = s3sink.api.export_opened

    def export_then_fail(raw, sink, **kw):
        if not hasattr(sink, "write"):      # an object exported into memory
            return real(raw, sink, **kw)

        class Cut:
            n = 0

            def write(self, view):
                Cut.n += len(view)
                if Cut.n > (9 << 20):
                    raise OSError(5, "the source went away")
                return sink.write(view)
        return real(raw, Cut(), **kw)
    monkeypatch.setattr(s3sink.api, "export_opened", export_then_fail)
    second = s3_url + "-cut"
    capsys.readouterr()
    assert run_cli("backup-tree", str(src), second) == 1
    assert "the source went away" in capsys.readouterr().out
    assert keys(second) == {MANIFEST_NAME, rels[0] + ".efsraw"}
    assert run_cli("verify-set", second) == 1            # the manifest names the failure


def test_short_processes_exit_cleanly(xattr_dir, s3_url):
    """Each command is a short process that ends right after its last
    request: none may abort at interpreter exit (the client library's
    asynchronous functions did so, about one exit in eight)."""
    src = xattr_dir / "src"
    make_tree(src, sizes=(100, 20_000))
    efs = [sys.executable, "-m", "efsfast"]
    for n in range(6):
        url = f"{s3_url}-{n}"
        for argv in (["backup-tree", "--quiet", str(src), url], ["verify-set", url]):
            r = subprocess.run(efs + argv, capture_output=True, text=True)
            assert r.returncode == 0, (argv, r.returncode, r.stderr[-2000:])
