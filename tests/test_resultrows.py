"""decrypt-tree's results as forked workers send them (crypto/resultrows.py):
what the parent rebuilds from the rows is equal, field for field, to what
decrypt() returned, and a result the rows cannot give back travels whole."""
import dataclasses
import os
import pickle
import sys

import pytest

pytest.importorskip("cryptography", reason="decryption needs the 'cryptography' package")

from efsfast.crypto import encrypt, forked, resultrows, tree  # noqa: E402
from efsfast.crypto.decrypt import decrypt  # noqa: E402
from efsfast.crypto.keys import Key  # noqa: E402

from _keys import certificate, rsa_key  # noqa: E402


@pytest.fixture(scope="module")
def people():
    alice, agent = rsa_key(2048, "alice"), rsa_key(2048, "agent")
    return (Key("alice.pem", alice, certificate(alice, "alice")),
            Key("agent.pem", agent, certificate(agent, "recovery agent")))


def raw(tmp_path, name, streams, people, **kw):
    alice, agent = people
    p = tmp_path / "raw" / name
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(encrypt(streams, [alice.certificate], [agent.certificate], **kw))
    return str(p)


def decrypted(tmp_path, sources, keys, tag="d"):
    """decrypt() of each source to a place of its own: (results, dests)."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    dests = [str(out / f"{tag}{i}") for i in range(len(sources))]
    return [decrypt(s, d, keys, directory=False) for s, d in zip(sources, dests)], dests


def same(a, b):
    """Equal, and equal in every way a caller could look (types, field
    values and their order, repr)."""
    assert a == b and type(a) is type(b) and repr(a) == repr(b)
    assert list(vars(a).items()) == list(vars(b).items())
    assert vars(a.opened) == vars(b.opened) and vars(a.opened.entry) == vars(b.opened.entry)
    assert type(a.opened.algorithm) is type(b.opened.algorithm)


def test_plain_files_come_back_equal_for_every_key_and_algorithm(tmp_path, people):
    alice, agent = people
    sources = [raw(tmp_path, f"f{i}", os.urandom(100 * i), people,
                   algorithm="3des" if i % 3 == 0 else "aes256") for i in range(7)]
    # the user's key opens some, the recovery agent's the others: two shapes
    results, dests = decrypted(tmp_path, sources[:4], [alice])
    more, more_dests = decrypted(tmp_path, sources[4:], [agent], tag="agent")
    results, dests = results + more, dests + more_dests
    assert {r.opened.entry.kind for r in results} == {"DDF", "DRF"}
    data = resultrows.pack(results, dests)
    assert data is not None and len(data[0]) == 4      # (2 keys x 2 algorithms)
    back = resultrows.Unpacker()(pickle.loads(pickle.dumps(data)), dests)
    assert len(back) == len(results)
    for a, b in zip(back, results):
        same(a, b)
    assert len(pickle.dumps(data)) < len(pickle.dumps(results))


@pytest.mark.parametrize("what", ["named stream", "folder", "other path", "subclass", "no result"])
def test_what_the_rows_cannot_give_back_is_not_packed(tmp_path, people, what):
    alice, _ = people
    streams = {"": b"main", "extra": b"named"} if what == "named stream" else b"data"
    source = raw(tmp_path, "f", None if what == "folder" else streams, people)
    results, dests = decrypted(tmp_path, [source, raw(tmp_path, "g", b"plain", people)], [alice])
    if what == "folder":
        results[0] = decrypt(source, dests[0] + "-folder", [alice])
        dests[0] += "-folder"
        assert results[0].directory
    elif what == "other path":
        dests[0] += "-elsewhere"
    elif what == "subclass":
        sub = dataclasses.make_dataclass("Sub", [], bases=(type(results[0]),), frozen=True)
        results[0] = sub(**vars(results[0]))
    elif what == "no result":
        results[0] = tree._FolderDone(dests[0])
    assert resultrows.pack(results, dests) is None
    assert resultrows.pack(results[1:], dests[1:]) is not None
    assert resultrows.pack(results[1:], dests) is None      # (a result short)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers: Linux only")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_decrypt_tree_on_forked_workers_gives_decrypts_results(tmp_path, people, monkeypatch):
    """A folder of raw streams (plain files, one with a named stream: its
    chunk sent whole) decrypted on forked workers: each result equal to
    decrypt()'s of the same stream."""
    alice, _ = people
    src = tmp_path / "src"
    src.mkdir()
    for i in range(40):
        streams = {"": b"x" * i, "ads": b"y"} if i == 17 else os.urandom(i * 50)
        (src / f"f{i:02d}.efsraw").write_bytes(encrypt(streams, [alice.certificate]))
    monkeypatch.setattr(forked, "usable", lambda jobs, workers: True)
    packed = []
    real = resultrows.Unpacker.__call__

    def counted(self, data, dests):
        packed.append(len(dests))
        return real(self, data, dests)
    monkeypatch.setattr(resultrows.Unpacker, "__call__", counted)
    r = tree.decrypt_tree(src, tmp_path / "dest", [alice], workers=2, sync=False)
    assert not r.failures and r.bulk.files == 40
    assert 0 < sum(packed) < 40          # (the named stream's chunk went whole)
    again, _ = decrypted(tmp_path, [j[1] for j in r.jobs], [alice])
    for (dest, _), got, alone in zip(r.jobs, r.bulk.results, again):
        same(got, dataclasses.replace(alone, path=dest))


def test_a_class_with_a_field_the_rows_do_not_carry_is_sent_whole(tmp_path, people, monkeypatch):
    """The rows carry exactly the classes' fields today; were one added,
    results would travel pickle's way (never rebuilt without it)."""
    alice, _ = people
    results, dests = decrypted(tmp_path, [raw(tmp_path, "f", b"data", people)], [alice])
    assert resultrows._FITS and all([f.name for f in dataclasses.fields(cls)] == names
                                    for cls, names in resultrows.FIELDS.items())
    assert resultrows.pack(results, dests) is not None
    monkeypatch.setattr(resultrows, "_FITS", False)
    assert resultrows.pack(results, dests) is None
