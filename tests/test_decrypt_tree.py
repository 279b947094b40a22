"""decrypt-tree of a backup set checks every object against its manifest
(size and SHA-256, from the bytes it decrypts) and leaves nothing of one
that does not match; an incomplete set is refused; and decrypt-tree and
verify --key over trees fail what they cannot list or read as named items,
going on with the rest (on tmpfs, with root's DAC override dropped)."""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("cryptography", reason="decryption needs the 'cryptography' package")

import efsfast  # noqa: E402
from efsfast import cli  # noqa: E402
from efsfast.backupset import MANIFEST_NAME, read_manifest  # noqa: E402
from efsfast.backupset.manifest import PARTIAL_NAME  # noqa: E402
from efsfast.crypto import encrypt  # noqa: E402

from _keys import certificate, pem, rsa_key  # noqa: E402
from conftest import listing  # noqa: E402
from test_unreadable import _why_not, run_without_dac_override  # noqa: E402

PLAIN = {"Docs/a.txt": b"A" * 5000, "Docs/b.bin": os.urandom(70_000), "top.txt": b"top",
         "plain/c.bin": os.urandom(200_000)}


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    k = rsa_key(2048, "alice")
    d = tmp_path_factory.mktemp("key")
    (d / "alice.pem").write_bytes(pem(k))
    return d / "alice.pem", certificate(k, "alice")


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def backup_set(xattr_dir, key, capsys):
    """A set made by backup-tree of an efs_raw tree: an encrypted folder
    with two files, a plain folder with one, a file at the top."""
    src = xattr_dir / "src"
    (src / "plain").mkdir(parents=True)
    efsfast.restore(src / "Docs", encrypt(None, [key[1]]), directory=True)
    for rel, data in PLAIN.items():
        efsfast.restore(src / rel, encrypt(data, [key[1]]))
    rc, out, err = run(capsys, "backup-tree", src, xattr_dir / "set", "--quiet")
    assert rc == 0, out + err
    return xattr_dir / "set"


def decrypt_tree(capsys, key, src, dest, *more):
    rc, out, err = run(capsys, "decrypt-tree", "--key", key[0], "--json", "--quiet", src, dest,
                       *more)
    return rc, (json.loads(out) if out.strip() else None), err


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_whole_set_decrypts_checked(capsys, key, backup_set, tmp_path):
    rc, rec, err = decrypt_tree(capsys, key, backup_set, tmp_path / "plain")
    assert rc == 0, err
    set_id = read_manifest(backup_set / MANIFEST_NAME).header.set_id
    assert rec["set_id"] == set_id and rec["counts"]["failed"] == 0 and rec["counts"]["done"] == 5   # 4 files, 1 folder
    assert rec["counts"]["verified"] == 5
    for rel, data in PLAIN.items():
        assert (tmp_path / "plain" / rel).read_bytes() == data


@pytest.mark.parametrize("damage", ["flip", "swap", "cut", "header", "missing"])
def test_an_object_unlike_its_manifest_line_fails_and_leaves_nothing(
        capsys, key, backup_set, tmp_path, damage):
    victim = backup_set / "Docs" / "b.bin.efsraw"
    want = sha(victim)
    data = bytearray(victim.read_bytes())
    if damage == "flip":            # a ciphertext byte: it still decrypts, to other bytes
        data[-100] ^= 1
    elif damage == "swap":          # another object of the set, whole and decryptable
        data = bytearray((backup_set / "Docs" / "a.txt.efsraw").read_bytes())
    elif damage == "cut":
        del data[len(data) // 2:]
    elif damage == "header":        # the raw stream's own header: it does not parse
        data[1] ^= 0xFF
    if damage == "missing":
        victim.unlink()
    else:
        victim.write_bytes(bytes(data))
    dest = tmp_path / "plain"
    rc, rec, err = decrypt_tree(capsys, key, backup_set, dest)
    assert rc == 1, err
    assert rec["counts"]["done"] == 4 and rec["counts"]["failed"] == 1
    (f,) = rec["failures"]
    assert f["path"] == str(dest / "Docs" / "b.bin") and f["source"] == str(victim)
    if damage == "missing":
        assert f["errno"] == 2
    else:
        assert f["kind"] == "mismatch"
        assert want in f["error"] and hashlib.sha256(data).hexdigest() in f["error"]
        if damage in ("cut", "swap"):
            assert f"{len(data)} bytes, the manifest says" in f["error"]
        if damage in ("cut", "header"):
            assert "decrypting it failed" in f["error"]
    # nothing of it, no temporaries; the others whole
    assert listing(dest / "Docs") == ["a.txt"]
    for rel, plain in PLAIN.items():
        if rel != "Docs/b.bin":
            assert (dest / rel).read_bytes() == plain


def test_a_damaged_encrypted_folder_object_is_a_failed_item(capsys, key, backup_set, tmp_path):
    (backup_set / "Docs.efsraw").write_bytes(b"x" + (backup_set / "Docs.efsraw").read_bytes())
    rc, rec, _ = decrypt_tree(capsys, key, backup_set, tmp_path / "plain")
    assert rc == 1 and rec["counts"]["failed"] == 1 and rec["counts"]["done"] == 4
    assert rec["failures"][0]["path"] == str(tmp_path / "plain" / "Docs")
    assert "the manifest's" in rec["failures"][0]["error"]


def test_an_incremental_set_takes_its_objects_from_the_earlier_set(
        capsys, key, backup_set, xattr_dir, tmp_path):
    efsfast.restore(xattr_dir / "src" / "new.txt", encrypt(b"new", [key[1]]))
    rc, out, err = run(capsys, "backup-tree", xattr_dir / "src", xattr_dir / "incr", "--quiet",
                       "--since", backup_set)
    assert rc == 0, out + err
    rc, rec, err = decrypt_tree(capsys, key, xattr_dir / "incr", tmp_path / "p1")
    assert rc == 0 and rec["counts"]["done"] == 6, err
    assert (tmp_path / "p1" / "Docs" / "b.bin").read_bytes() == PLAIN["Docs/b.bin"]
    assert (tmp_path / "p1" / "new.txt").read_bytes() == b"new"
    # damage in the earlier set is caught through the incremental one
    victim = backup_set / "top.txt.efsraw"
    data = victim.read_bytes()      # its last byte changed (a constant could be the same)
    victim.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    rc, rec, err = decrypt_tree(capsys, key, xattr_dir / "incr", tmp_path / "p2")
    assert rc == 1 and [f["source"] for f in rec["failures"]] == [str(victim)]
    assert "the manifest's" in rec["failures"][0]["error"]
    assert not (tmp_path / "p2" / "top.txt").exists()
    # the earlier set moved: refused before any work, found again with --with
    os.rename(backup_set, xattr_dir / "moved")
    rc, out, err = run(capsys, "decrypt-tree", "--key", key[0], xattr_dir / "incr",
                       tmp_path / "p3")
    assert rc == 2 and "--with" in err and not (tmp_path / "p3").exists()
    rc, rec, err = decrypt_tree(capsys, key, xattr_dir / "incr", tmp_path / "p3", "--with",
                                xattr_dir / "moved")
    assert rc == 1 and rec["counts"]["done"] == 5, err          # the damaged one still fails


def test_an_incomplete_set_is_refused_unless_partial(capsys, key, backup_set, tmp_path):
    """What a backup that did not finish leaves (its partial manifest, no
    manifest): refused before any work or password, unless --partial."""
    os.rename(backup_set / MANIFEST_NAME, backup_set / PARTIAL_NAME)
    dest = tmp_path / "plain"
    rc, out, err = run(capsys, "decrypt-tree", "--key", key[0], backup_set, dest)
    assert rc == 2 and "an incomplete backup set" in err and "it lists 5 objects" in err
    assert "--skip-existing" in err and "decrypt-tree --partial" in err
    assert "nothing was decrypted" in err and not dest.exists()
    rc, out, err = run(capsys, "decrypt-tree", "--key", key[0], "--partial", "--json",
                       backup_set, dest)
    rec = json.loads(out)
    assert rc == 0 and rec["counts"]["done"] == 5 and rec["complete"] is False, err
    assert rec["notes"] == ["an incomplete set: decrypted only what it lists"]
    assert (dest / "Docs" / "a.txt").read_bytes() == PLAIN["Docs/a.txt"]


def test_raw_streams_without_a_manifest_say_not_verified(capsys, key, backup_set, tmp_path):
    (backup_set / MANIFEST_NAME).unlink()
    rc, rec, err = decrypt_tree(capsys, key, backup_set, tmp_path / "plain")
    assert rc == 0 and rec["verified"] is False and rec["notes"] == ["not verified: no manifest"]
    rc, out, _ = run(capsys, "decrypt-tree", "--key", key[0], backup_set, tmp_path / "p2")
    assert rc == 0 and "  not verified: no manifest" in out


needs_dac_drop = pytest.mark.skipif(bool(_why_not()), reason=_why_not() or "ok")


@needs_dac_drop
def test_unreadable_objects_and_folders_are_failed_items(key, xattr_dir, backup_set):
    """A folder of .efsraw files (no manifest) with an unlistable folder and
    an unreadable object, and the same in a set: each a named failed item,
    the rest decrypted, exit 1."""
    plain_dir = xattr_dir / "no-manifest"
    shutil.copytree(backup_set, plain_dir)
    (plain_dir / MANIFEST_NAME).unlink()
    (plain_dir / "stray.txt").write_text("not a raw stream")
    for d in (plain_dir, backup_set):
        os.chmod(d / "plain", 0)
        os.chmod(d / "top.txt.efsraw", 0)
    os.chmod(plain_dir / "stray.txt", 0)
    try:
        code, out, err = run_without_dac_override(
            "decrypt-tree", "--key", key[0], "--json", plain_dir, xattr_dir / "out1")
        code2, out2, err2 = run_without_dac_override(
            "decrypt-tree", "--key", key[0], "--json", backup_set, xattr_dir / "out2")
        code3, out3, _ = run_without_dac_override("verify", "--key", key[0], plain_dir)
    finally:
        for d in (plain_dir, backup_set):
            os.chmod(d / "plain", 0o755)
            os.chmod(d / "top.txt.efsraw", 0o644)
    assert code == 1, err
    rec = json.loads(out)
    failed = {f["path"]: f for f in rec["failures"]}
    assert set(failed) == {str(plain_dir / "plain"), str(plain_dir / "stray.txt"),
                           str(xattr_dir / "out1" / "top.txt")}
    assert all(f["errno"] == 13 for f in failed.values())
    assert "cannot list the folder" in failed[str(plain_dir / "plain")]["error"]
    assert rec["counts"]["done"] == 2          # Docs/a.txt, Docs/b.bin (Docs a folder)
    assert listing(xattr_dir / "out1") == ["Docs"]
    assert (xattr_dir / "out1" / "Docs" / "a.txt").read_bytes() == PLAIN["Docs/a.txt"]
    # in a set: planned from the manifest, so the objects are named one by one
    assert code2 == 1, err2
    rec = json.loads(out2)
    assert {f["path"] for f in rec["failures"]} == {str(xattr_dir / "out2" / "top.txt"),
                                                    str(xattr_dir / "out2" / "plain" / "c.bin")}
    assert rec["counts"]["done"] == 3 and all(f["errno"] == 13 for f in rec["failures"])
    assert listing(xattr_dir / "out2" / "plain") == []
    # verify --key names them too, and checks the rest
    assert code3 == 1
    assert f"{plain_dir / 'plain'}: NOT DECRYPTABLE: cannot list the folder: " \
        f"{os.strerror(13)}" in out3
    assert f"{plain_dir / 'top.txt.efsraw'}: NOT DECRYPTABLE" in out3
    assert f"{plain_dir / 'stray.txt'}: NOT DECRYPTABLE" in out3
    assert "verify --key: 3 decryptable, 3 not" in out3      # Docs, a.txt, b.bin


def _many(xattr_dir, key, capsys, n=40, size=20_000):
    """A set of ``n`` files (enough for decrypt-tree's worker processes)."""
    src = xattr_dir / "many"
    (src / "d").mkdir(parents=True)
    bodies = {f"d/f{i:03d}": os.urandom(size + i) for i in range(n)}
    for rel, data in bodies.items():
        efsfast.restore(src / rel, encrypt(data, [key[1]]))
    rc, out, err = run(capsys, "backup-tree", src, xattr_dir / "many-set", "--quiet")
    assert rc == 0, out + err
    return xattr_dir / "many-set", bodies


# (the fork is forced inside pytest, whose process may run a library's threads)
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_many_files_run_in_worker_processes(capsys, key, xattr_dir, tmp_path, monkeypatch):
    """RSA in cryptography holds the GIL: a tree of many files is decrypted
    by forked workers, each item still its own result or named failure."""
    from efsfast.crypto import forked
    set_dir, bodies = _many(xattr_dir, key, capsys)
    victim = set_dir / "d" / "f007.efsraw"
    data = victim.read_bytes()      # its last byte changed (a constant could be the same)
    victim.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    used = []
    real = forked.run_forked
    monkeypatch.setattr(forked, "run_forked", lambda *a, **k: used.append(1) or real(*a, **k))
    # (a thread an earlier test left finishing, or one a library started in
    # this pytest process, would make decrypt-tree keep to threads)
    monkeypatch.setattr(forked, "alone", lambda: True)
    rc, rec, err = decrypt_tree(capsys, key, set_dir, tmp_path / "p", "--workers", "2")
    assert used == [1] and rc == 1, err
    assert rec["counts"]["done"] == 39 and [f["source"] for f in rec["failures"]] == [str(victim)]
    assert rec["failures"][0]["kind"] == "mismatch"
    assert "the manifest's" in rec["failures"][0]["error"]
    for rel, data in bodies.items():
        if rel != "d/f007":
            assert (tmp_path / "p" / rel).read_bytes() == data
    assert listing(tmp_path / "p" / "d") == sorted(r[2:] for r in bodies if r != "d/f007")


def test_the_command_line_process_is_alone_when_it_would_fork(key):
    """decrypt-tree forks only from a process running one thread: the
    command line, once it has imported what decrypt-tree needs and loaded a
    key, must still be one (a library's C threads would keep it on threads)."""
    code = ("import sys; from efsfast.cli import build_parser; build_parser(); "
            "from efsfast.crypto import forked, load_keys, tree; load_keys(sys.argv[1]); "
            "print(forked.alone())")
    r = subprocess.run([sys.executable, "-c", code, str(key[0])], capture_output=True,
                       text=True, check=True)
    assert r.stdout.strip() == ("True" if sys.platform.startswith("linux") else r.stdout.strip())


def test_alone_right_after_a_bulk_job(xattr_dir):
    """restore_many's joined worker threads may still be ending in the system
    when it returns: decrypt-tree called next in the same process must still
    find it alone (and use processes), not take the remains for a library's
    threads."""
    code = ("import sys, tempfile; import efsfast; from efsfast.crypto import forked\n"
            "d = tempfile.mkdtemp(dir=sys.argv[1])\n"
            "raw = efsfast.synthetic_raw(20000, seed=1)\n"
            "ok = []\n"
            "for k in range(100):\n"
            "    efsfast.restore_many([(f'{d}/{k}-{i}', raw) for i in range(8)], workers=4)\n"
            "    ok.append(forked.alone())\n"
            "print(all(ok))")
    r = subprocess.run([sys.executable, "-c", code, str(xattr_dir)], capture_output=True,
                       text=True, check=True)
    assert r.stdout.strip() == ("True" if sys.platform.startswith("linux") else r.stdout.strip())


def test_when_worker_processes_are_used():
    import sys
    import threading
    from efsfast.crypto import forked
    raw_jobs = [("d", "s", {"object": False})] * forked.MIN_JOBS
    if not sys.platform.startswith("linux"):
        assert not forked.usable(raw_jobs, 2)
        return
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not forked.usable(raw_jobs, 2)           # a fork would copy its locks
    finally:
        release.set()
        other.join()
    if forked.alone():
        assert forked.usable(raw_jobs, 2)
    assert not forked.usable(raw_jobs, 1)
    assert not forked.usable(raw_jobs[1:], 2)
    assert not forked.usable(raw_jobs[1:] + [("d", "s", {"object": True})], 2)


# (the fork is forced inside pytest, whose process may run a library's threads)
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_worker_processes_stop_cleanly_when_cancelled(capsys, key, xattr_dir, tmp_path,
                                                      monkeypatch):
    from efsfast import CancelToken
    from efsfast.crypto import forked, load_keys
    from efsfast.crypto.tree import decrypt_tree as api_decrypt_tree
    # (enough files that a cancel seen late still leaves some undone: the
    # parent reads results a chunk of up to 8 files at a time and naps up
    # to 10 ms between looks, and 40 files were once all done by then)
    n = 200
    set_dir, bodies = _many(xattr_dir, key, capsys, n=n, size=300_000)
    token = CancelToken()

    def progress(files, nbytes, total):
        if files >= 3:
            token.cancel()
    monkeypatch.setattr(forked, "usable", lambda jobs, workers: True)
    r = api_decrypt_tree(set_dir, tmp_path / "p", load_keys(key[0]), workers=2,
                         progress=progress, cancel=token)
    assert r.bulk.cancelled and 3 <= r.bulk.files < n and not r.bulk.failures
    names = listing(tmp_path / "p" / "d")
    assert len(names) == r.bulk.files and not any(n.endswith(".tmp") for n in names)
    for n in names:
        assert (tmp_path / "p" / "d" / n).read_bytes() == bodies[f"d/{n}"]


def _drop_check_fields(set_dir, stored_name: str) -> None:
    """The manifest with one object's line lacking its size and SHA-256,
    its end line's hash made again (the manifest itself still reads)."""
    lines = (set_dir / MANIFEST_NAME).read_bytes().splitlines(keepends=True)
    body = []
    for raw in lines[:-1]:
        d = json.loads(raw)
        if d.get("path") == stored_name:
            d.pop("raw_size", None)
            d.pop("sha256", None)
            raw = (json.dumps(d, separators=(",", ":"), sort_keys=True) + "\n").encode()
        body.append(raw)
    end = json.loads(lines[-1])
    end["manifest_sha256"] = hashlib.sha256(b"".join(body)).hexdigest()
    body.append((json.dumps(end, separators=(",", ":"), sort_keys=True) + "\n").encode())
    (set_dir / MANIFEST_NAME).write_bytes(b"".join(body))


@pytest.mark.parametrize("command", ["decrypt-tree", "restore-tree"])
def test_an_object_whose_line_gives_nothing_to_check_is_named(capsys, key, backup_set,
                                                              tmp_path, command):
    _drop_check_fields(backup_set, "Docs/b.bin")
    read_manifest(backup_set / MANIFEST_NAME)           # (still a manifest)
    more = ["--key", key[0]] if command == "decrypt-tree" else []
    rc, out, err = run(capsys, command, *more, backup_set, tmp_path / "out")
    assert rc == 1, out + err
    said = " ".join((out + err).split())       # (the failure table wraps its lines)
    assert "gives no size and SHA-256 to check it against" in said
    assert "None" not in said
    assert not (tmp_path / "out" / "Docs" / "b.bin").exists()
    assert (tmp_path / "out" / "Docs" / "a.txt").exists()
