"""The S3 store against a real S3 server (SeaweedFS, tests/s3_server.py):
round trips, create-only writes and manifests, races, refused credentials
and missing buckets found up front, the server going away mid-transfer, and
credentials kept out of every message."""
import concurrent.futures
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

from efsfast.store import Failure, StoreError, open_store, parse_url
from efsfast.store.s3config import Secret, settings_from_env

from conftest import S3_BUCKET, use_s3_server

MIB = 1 << 20
PART = 5 * MIB          # S3's smallest part: the multipart cases stay small


def _store(url, **kw):
    kw.setdefault("part_size", PART)
    kw.setdefault("memory_limit", 4 * PART)
    kw.setdefault("single_put_max", PART)       # "multipart" cases: above one part
    return open_store(url, **kw)


def _data(n: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(f"{seed}".encode()).digest() * 2048     # 64 KiB
    return (block * (n // len(block) + 1))[:n]


def _secrets_absent(server, *texts):
    for creds in (server.admin, server.reader):
        for t in texts:
            assert creds.secret_access_key not in t
            assert creds.access_key_id not in t


def _all_text(exc: BaseException) -> str:
    return " ".join([str(exc), repr(exc), repr(exc.args), str(exc.filename),
                     str(exc.__cause__), str(exc.__context__ if not
                                             exc.__suppress_context__ else "")])


# ---- without a server: URLs, settings, the lazy import

@pytest.mark.parametrize("url,expect", [
    ("s3://bucket", ("bucket", "")), ("s3://bucket/", ("bucket", "")),
    ("s3://my.bucket-1/a/b/", ("my.bucket-1", "a/b")), ("S3://bkt/x", ("bkt", "x"))])
def test_parse_url(url, expect):
    assert parse_url(url) == expect


@pytest.mark.parametrize("url", ["s3://", "s3://b/x", "s3://bu..cket/x", "s3://bkt/a//b",
                                 "s3://bkt/a/../b", "s3://bkt/a\\b", "file:///x", "s3:/bkt"])
def test_parse_url_refuses(url):
    with pytest.raises(StoreError) as e:
        parse_url(url)
    assert e.value.failure is Failure.CONFIG


def test_settings_order_env_then_profile(tmp_path):
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = DEFKEY\naws_secret_access_key = DEFSECRET\n"
                     "[work]\naws_access_key_id = WORKKEY\naws_secret_access_key = WORKSECRET\n"
                     "aws_session_token = WORKTOKEN\n")
    conf = tmp_path / "config"
    conf.write_text("[profile work]\nregion = eu-west-3\nendpoint_url = https://s3.example.test\n")
    files = {"AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_CONFIG_FILE": str(conf)}
    s = settings_from_env("s3://bkt/p", dict(files, AWS_PROFILE="work"))
    assert (s.region, s.endpoint, s.session_token) == ("eu-west-3", "https://s3.example.test",
                                                       Secret("WORKTOKEN"))
    assert s.access_key_id == Secret("WORKKEY") and "profile 'work'" in s.credentials_from
    # the environment's keys, region and endpoint come first
    s = settings_from_env("s3://bkt/p", dict(files, AWS_PROFILE="work", AWS_ACCESS_KEY_ID="EK",
                                             AWS_SECRET_ACCESS_KEY="ES", AWS_REGION="ap-south-1",
                                             AWS_ENDPOINT_URL="http://127.0.0.1:9"))
    assert (s.access_key_id, s.region, s.endpoint, s.plain_http) == (
        Secret("EK"), "ap-south-1", "http://127.0.0.1:9", True)
    s = settings_from_env("s3://bkt", files)
    assert s.access_key_id == Secret("DEFKEY") and s.region == "us-east-1"
    text = repr(s) + str(s)
    for secret in ("DEFKEY", "DEFSECRET", "WORKSECRET", "WORKTOKEN"):
        assert secret not in text


def test_settings_refuse_unknown_profile_and_half_keys(tmp_path):
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_CONFIG_FILE": str(tmp_path / "none2")}
    with pytest.raises(StoreError, match="profile 'nope'"):
        settings_from_env("s3://bkt", dict(env, AWS_PROFILE="nope"))
    with pytest.raises(StoreError, match="only one of"):
        settings_from_env("s3://bkt", dict(env, AWS_ACCESS_KEY_ID="K"))
    with pytest.raises(StoreError, match="not an http"):
        settings_from_env("s3://bkt", dict(env, AWS_ENDPOINT_URL="ftp://x"))


def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True)


def test_import_efsfast_and_the_store_package_load_no_s3_library():
    r = _fresh("""
        import sys, efsfast, efsfast.store, efsfast.store.s3config
        print(sorted(m for m in sys.modules if m.split('.')[0] in ('obstore', 'boto3', 's3fs')))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_missing_library_says_what_to_install():
    r = _fresh("""
        import sys
        sys.modules['obstore'] = None          # as if not installed
        from efsfast.store import open_store, StoreError, Failure
        try:
            open_store('s3://bkt/p')
        except StoreError as e:
            print(e.failure.value, '|', e)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("missing-library |")
    assert "pip install 'efsfast[s3]'" in r.stdout


def test_store_errors_keep_their_kind_class_and_text_through_pickling():
    import pickle
    for failure in Failure:
        e = StoreError(failure, "what happened", "s3://bkt/k")
        again = pickle.loads(pickle.dumps(e))
        assert (type(again), again.failure, str(again)) == (type(e), failure, str(e))
        assert isinstance(e, StoreError) and str(e).endswith("what happened: 's3://bkt/k'")
    assert isinstance(StoreError(Failure.EXISTS, "x"), FileExistsError)
    assert isinstance(StoreError(Failure.NOT_FOUND, "x"), FileNotFoundError)
    assert isinstance(StoreError(Failure.ACCESS_DENIED, "x"), PermissionError)
    assert type(StoreError(Failure.UNAVAILABLE, "x")) is StoreError


# ---- against the server


@pytest.mark.parametrize("size", [0, 16 * 1024, 2 * PART + 12345], ids=["0B", "16KiB", "multipart"])
def test_round_trip(s3_url, size):
    data = _data(size, seed=size)
    with _store(s3_url) as st:
        st.check(write=True)
        info = st.write("d/obj.efsraw", data)
        assert info.size == size
        got = st.read("d/obj.efsraw")
        memoryview(got)                 # a bytes-like object, handed on without a copy
        assert bytes(got) == data
        assert st.stat("d/obj.efsraw").size == size
        assert b"".join(bytes(c) for c in st.read_chunks("d/obj.efsraw")) == data
        if size:
            assert bytes(st.read("d/obj.efsraw", 1, min(size, 1000))) == data[1:1000]
            assert bytes(st.read("d/obj.efsraw", size - 7)) == data[-7:]
        assert [(o.key, o.size) for o in st.list()] == [("d/obj.efsraw", size)]
        st.remove("d/obj.efsraw")
        assert st.stat("d/obj.efsraw") is None and list(st.list()) == []


def test_bytes_in_memory_go_in_one_put_up_to_the_cutoff(s3_url):
    """Above a part but within single_put_max: one PUT, create-only like
    any single PUT (a multipart upload's ETag has a part count: "-N")."""
    data = _data(2 * PART + 1, seed=3)
    with _store(s3_url, single_put_max=3 * PART) as st:
        info = st.write("one.efsraw", data)
        assert info.version and "-" not in info.version.strip('"')
        with pytest.raises(FileExistsError):
            st.write("one.efsraw", _data(2 * PART + 1, seed=5))
        assert bytes(st.read("one.efsraw")) == data
        st.write("two.efsraw", _data(3 * PART + 1, seed=4))      # above it: multipart
        assert "-" in st.stat("two.efsraw").version.strip('"')


def test_streamed_write_of_unknown_size_goes_multipart(s3_url):
    data = _data(3 * PART + 99, seed=7)
    chunks = (data[i:i + 1_000_000] for i in range(0, len(data), 1_000_000))
    with _store(s3_url) as st:
        info = st.write("big.efsraw", chunks)
        assert info.size == len(data)
        assert hashlib.sha256(b"".join(bytes(c) for c in st.read_chunks("big.efsraw"))
                              ).digest() == hashlib.sha256(data).digest()
        assert st.budget.used == 0 and st.budget.peak <= st.budget.limit



def test_a_request_thread_never_waits_for_memory(s3_url):
    """A streamed upload that must wait for memory waits on the thread that
    submits it, before its request is queued: the one request thread stays
    free for a PUT of bytes already in memory (whose memory its caller may
    hold, as a backup worker does).  Taking the memory on the request thread
    hung backups whose workers outnumbered the requests in flight."""
    data = _data(PART + 99, seed=8)
    with _store(s3_url, jobs=1, memory_limit=PART) as st:
        held = st.budget.take(PART)          # all of it, as in-memory objects hold it
        submitted = threading.Event()
        result = []

        def stream():
            fut = st.submit_write("streamed.efsraw", iter([data]))
            submitted.set()
            result.append(fut.result())
        t = threading.Thread(target=stream)
        t.start()
        try:
            submitted.wait(0.5)         # (where it is queued at once, it goes first)
            done = st.submit_write("small.efsraw", b"x" * 100)
            assert done.result(timeout=20).size == 100
        finally:
            st.budget.give(held)            # (a failure above ends, not hangs, the test)
            t.join(60)
        assert not t.is_alive() and result[0].size == len(data)
        assert st.budget.used == 0


def test_concurrent_readers_take_a_window_s_memory_at_once(s3_url):
    """Readers of large objects at once, with room for one window: each
    takes its whole window before its first request, so none holds part of
    the memory while waiting for the rest (taken chunk by chunk, two
    readers each held a chunk and waited for a second, for ever).  Each
    take is slowed, so that the readers' takes interleave."""
    data = _data(3 * PART + 7, seed=9)
    with _store(s3_url, jobs=2, memory_limit=2 * PART) as st:
        st.write("big.efsraw", data)
        want = hashlib.sha256(data).digest()
        take = st.budget.take

        def slow_take(n):
            got = take(n)
            time.sleep(0.05)
            return got
        st.budget.take = slow_take

        def read():
            return hashlib.sha256(b"".join(bytes(c) for c in st.read_chunks("big.efsraw"))
                                  ).digest()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futs = [pool.submit(read) for _ in range(4)]
            try:
                assert [f.result(timeout=60) for f in futs] == [want] * 4
            finally:
                st.budget.limit = 1 << 40       # (a failure above ends, not hangs, the test)
                st.budget.give(0)               # (wakes the waiting ones)
        assert st.budget.used == 0 and st.budget.peak <= 2 * PART
        st.budget.limit = 2 * PART
        chunks = st.read_chunks("big.efsraw")
        assert bytes(next(chunks)) == data[:PART] and st.budget.used == 2 * PART
        chunks.close()          # a reader stopping early gives the window back at once
        assert st.budget.used == 0

def test_keys_outside_the_set_are_refused(s3_url):
    with _store(s3_url) as st:
        for key in ("../x", "/x", "a//b", "a/./b", "a\\b"):
            with pytest.raises(StoreError) as e:
                st.write(key, b"x")
            assert e.value.failure is Failure.CONFIG


@pytest.mark.parametrize("size", [10, 2 * PART + 1], ids=["single-put", "multipart"])
def test_no_replace_write_refused_where_an_object_is(s3_url, size):
    with _store(s3_url) as st:
        st.write("x.efsraw", _data(size, 1))
        with pytest.raises(FileExistsError) as e:
            st.write("x.efsraw", _data(size, 2))
        assert e.value.failure is Failure.EXISTS
        assert e.value.filename == f"{s3_url}/x.efsraw"
        assert bytes(st.read("x.efsraw")) == _data(size, 1)
        st.write("x.efsraw", _data(size, 3), replace=True)
        assert bytes(st.read("x.efsraw")) == _data(size, 3)


def test_publish_never_over_another_manifest(s3_url):
    with _store(s3_url) as st:
        assert st.atomic_create
        st.publish("efsfast-manifest.jsonl", b'{"type":"set"}\n')
        with pytest.raises(StoreError) as e:
            st.publish("efsfast-manifest.jsonl", b'{"type":"set","other":1}\n')
        assert e.value.failure is Failure.EXISTS
        assert "another set's manifest" in str(e.value)
        assert bytes(st.read("efsfast-manifest.jsonl")) == b'{"type":"set"}\n'


def test_two_writers_race_for_one_manifest(s3_url):
    """Eight writers (each its own store, its own connections) publish at
    the same moment: exactly one wins, every other is told EXISTS, and the
    manifest is the winner's."""
    stores = [_store(s3_url) for _ in range(8)]
    start = threading.Barrier(len(stores))
    results = [None] * len(stores)

    def race(i):
        start.wait()
        try:
            stores[i].publish("efsfast-manifest.jsonl", f"writer {i}\n".encode())
            results[i] = "won"
        except StoreError as exc:
            results[i] = exc.failure
    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert results.count("won") == 1, results
        assert results.count(Failure.EXISTS) == len(stores) - 1, results
        winner = results.index("won")
        assert bytes(stores[0].read("efsfast-manifest.jsonl")) == f"writer {winner}\n".encode()
    finally:
        for st in stores:
            st.close()


def test_bad_credentials_found_up_front(s3_server, s3_url, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-" + uuid.uuid4().hex)
    wrong = os.environ["AWS_SECRET_ACCESS_KEY"]
    with _store(s3_url) as st:
        with pytest.raises(StoreError) as e:
            st.check(write=True)
        assert e.value.failure is Failure.BAD_CREDENTIALS
        assert e.value.filename == s3_url
        text = _all_text(e.value) + repr(st)
        assert wrong not in text
        _secrets_absent(s3_server, text)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "NOSUCHKEY" + uuid.uuid4().hex[:8].upper())
    with _store(s3_url) as st, pytest.raises(StoreError) as e:
        st.check(write=False)
    assert e.value.failure is Failure.BAD_CREDENTIALS
    monkeypatch.undo()


def test_missing_bucket_found_up_front(s3_server, s3_url):
    url = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/set"
    with _store(url) as st:
        with pytest.raises(StoreError) as e:
            st.check(write=True)
        assert e.value.failure is Failure.NO_BUCKET
        assert "the bucket does not exist" in str(e.value)
        with pytest.raises(StoreError) as e:
            st.write("x", b"1")
        assert e.value.failure is Failure.NO_BUCKET


def test_read_only_keys_may_list_but_not_write(s3_server, s3_url, monkeypatch):
    with _store(s3_url) as st:
        st.write("there.efsraw", b"abc")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.reader.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.reader.secret_access_key)
    with _store(s3_url) as st:
        st.check(write=False)
        assert bytes(st.read("there.efsraw")) == b"abc"
        with pytest.raises(PermissionError) as e:
            st.publish("efsfast-manifest.jsonl", b"m")
        assert e.value.failure is Failure.ACCESS_DENIED
        _secrets_absent(s3_server, _all_text(e.value))
    monkeypatch.undo()


def test_profile_from_the_shared_credentials_file(s3_server, s3_url, monkeypatch, tmp_path):
    creds = tmp_path / "credentials"
    creds.write_text(f"[efs]\naws_access_key_id = {s3_server.admin.access_key_id}\n"
                     f"aws_secret_access_key = {s3_server.admin.secret_access_key}\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_PROFILE", "efs")
    with _store(s3_url) as st:
        st.check(write=True)
        st.write("p.efsraw", b"from a profile")
        assert bytes(st.read("p.efsraw")) == b"from a profile"
        assert st.settings.credentials_from.startswith("profile 'efs'")


@pytest.mark.parametrize("bundle", ["unset", "machine", "missing-file"])
def test_http_endpoint_with_and_without_a_ca_bundle(s3_url, monkeypatch, bundle):
    """A plain-HTTP endpoint needs no CA: AWS_CA_BUNDLE / SSL_CERT_FILE set,
    unset, or naming no file change nothing."""
    for name in ("AWS_CA_BUNDLE", "SSL_CERT_FILE"):
        if bundle == "unset":
            monkeypatch.delenv(name, raising=False)
        elif bundle == "missing-file":
            monkeypatch.setenv(name, "/nonexistent/ca.pem")
        elif not os.environ.get(name):
            pytest.skip(f"{name} is not set on this machine")
    with _store(s3_url) as st:
        st.write("ca.efsraw", b"x")
        assert bytes(st.read("ca.efsraw")) == b"x"


def test_https_with_an_unreadable_ca_bundle_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "K")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "S")
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tmp_path / "no-ca.pem"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    pytest.importorskip("obstore", reason="the S3 client library (efsfast[s3]) is not installed")
    with pytest.raises(StoreError) as e:
        open_store("s3://bkt/p")
    assert e.value.failure is Failure.CONFIG and "AWS_CA_BUNDLE" in str(e.value)
    assert e.value.filename == str(tmp_path / "no-ca.pem")


def test_settings_and_store_repr_hold_no_credentials(s3_server, s3_url):
    with _store(s3_url) as st:
        text = repr(st) + str(st) + repr(st.settings) + str(st.settings.__dict__)
    _secrets_absent(s3_server, text)
    with pytest.raises(TypeError):
        import pickle
        pickle.dumps(st.settings)


# ---- the server going away mid-transfer (a server of the test's own)


def test_server_stopped_mid_upload_leaves_no_object(own_s3_server, monkeypatch, tmp_path):
    """The server is killed after two parts of a multipart upload: the
    write fails, named and classed as the store being unavailable, within the
    bounded retries; once the server is back no object (no half object) is
    at the key, and a single PUT is either whole or absent."""
    url = f"s3://{S3_BUCKET}/killed"
    part = _data(PART, 5)
    sent = []

    def chunks():
        for i in range(6):
            if i == 2:
                own_s3_server.stop(grace_s=0)      # a crash: no graceful close
            sent.append(i)
            yield part
    with _store(url, retries=2, retry_timeout_s=3) as st:
        st.write("before.efsraw", b"whole")
        with pytest.raises(StoreError) as e:
            st.write("big.efsraw", chunks())
        assert e.value.failure is Failure.UNAVAILABLE, e.value
        assert e.value.filename == f"{url}/big.efsraw"
        assert "writing" in str(e.value)
        _secrets_absent(own_s3_server, _all_text(e.value))
    own_s3_server.start()                          # the same data, new ports
    use_s3_server(own_s3_server, monkeypatch, tmp_path)
    with _store(url) as st:
        assert {o.key: o.size for o in st.list()} == {"before.efsraw": 5}
        assert st.stat("big.efsraw") is None


def test_server_gone_reads_fail_named(own_s3_server):
    url = f"s3://{S3_BUCKET}/gone"
    # a window of one part: the chunks after the first are fetched after the stop
    with _store(url, retries=1, retry_timeout_s=2, memory_limit=PART) as st:
        st.write("a.efsraw", _data(3 * PART, 1))
        chunks = st.read_chunks("a.efsraw")
        next(chunks)
        own_s3_server.stop(grace_s=0)
        with pytest.raises(StoreError) as e:
            for _ in chunks:
                pass
        assert e.value.failure is Failure.UNAVAILABLE
        assert st.budget.used == 0
        with pytest.raises(StoreError) as e:
            st.check(write=False)
        assert e.value.failure is Failure.UNAVAILABLE


def test_https_is_verified_against_the_system_roots_and_aws_ca_bundle(tmp_path, monkeypatch):
    """An https:// endpoint (SeaweedFS with a certificate from a CA made
    here): refused while the CA is not trusted, never downgraded to HTTP;
    trusted once AWS_CA_BUNDLE names it."""
    from s3_server import MISSING_REASON, SeaweedServer, find_weed
    if find_weed() is None:
        pytest.skip(MISSING_REASON)
    pytest.importorskip("cryptography", reason="making the test CA needs cryptography")
    os.makedirs(tmp_path / "weed")
    with SeaweedServer(str(tmp_path / "weed"), tls=True) as server:
        server.make_bucket(S3_BUCKET)
        use_s3_server(server, monkeypatch, tmp_path)
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.https_endpoint)
        monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
        url = f"s3://{S3_BUCKET}/tls"
        with _store(url, retries=0, retry_timeout_s=2) as st, pytest.raises(StoreError) as e:
            st.check(write=True)
        assert e.value.failure is Failure.UNAVAILABLE
        assert "certificate was refused (UnknownIssuer)" in str(e.value)
        monkeypatch.setenv("AWS_CA_BUNDLE", server.ca_file)
        with _store(url, retries=0, retry_timeout_s=2) as st:
            if st.tls_limit:        # an obstore too old to add roots says so
                with pytest.raises(StoreError) as e:
                    st.check(write=True)
                assert st.tls_limit in str(e.value)
                pytest.skip(st.tls_limit)
            st.check(write=True)
            st.write("over-tls.efsraw", b"tls")
            assert bytes(st.read("over-tls.efsraw")) == b"tls"


# ---- transient faults: retried, within bounds


@pytest.mark.parametrize("mode", ["503", "reset"])
def test_transient_faults_are_retried(s3_server, s3_url, monkeypatch, mode):
    """The first three connections fail (a 503 SlowDown answer, or a reset):
    the store's bounded retries carry every call through."""
    from s3_faults import FlakyRelay
    with _store(s3_url) as st:
        st.write("r.efsraw", b"retry me")
    with FlakyRelay(int(s3_server.endpoint.rsplit(":", 1)[1]), 3, mode) as relay:
        monkeypatch.setenv("AWS_ENDPOINT_URL", relay.endpoint)
        with _store(s3_url, retries=4, retry_timeout_s=30) as st:
            st.check(write=True)
            assert bytes(st.read("r.efsraw")) == b"retry me"
            st.write("r2.efsraw", b"after faults")
        assert relay.failed == 3 and relay.relayed >= 1


def test_transient_faults_past_the_bound_fail_named(s3_server, s3_url, monkeypatch):
    from s3_faults import FlakyRelay
    with FlakyRelay(int(s3_server.endpoint.rsplit(":", 1)[1]), 100, "503") as relay:
        monkeypatch.setenv("AWS_ENDPOINT_URL", relay.endpoint)
        with _store(s3_url, retries=2, retry_timeout_s=30) as st, \
                pytest.raises(StoreError) as e:
            st.check(write=False)
        assert e.value.failure is Failure.UNAVAILABLE
        assert "HTTP 503" in str(e.value)  # (and SlowDown where the library passes it on)
        assert relay.failed == 3            # the first try and two retries


def test_a_create_whose_answer_was_lost_is_not_refused_by_its_own_retry(s3_server, s3_url,
                                                                        monkeypatch):
    """The server stores the PUT, the answer is lost, the library retries:
    the retry meets the object its own first try made (412).  That is a
    write done, not another writer's object; likewise for a manifest."""
    from s3_faults import FlakyRelay
    with FlakyRelay(int(s3_server.endpoint.rsplit(":", 1)[1]), 1, "lose-answer") as relay:
        monkeypatch.setenv("AWS_ENDPOINT_URL", relay.endpoint)
        with _store(s3_url, retries=4, retry_timeout_s=30) as st:
            st.write("lost.efsraw", b"landed once")
            assert relay.failed == 1
        relay.fail_left = 1         # the next connection: a new store's first
        with _store(s3_url, retries=4, retry_timeout_s=30) as st:
            st.publish("efsfast-manifest.jsonl", b"my manifest\n")
            assert relay.failed == 2
            assert bytes(st.read("efsfast-manifest.jsonl")) == b"my manifest\n"
            with pytest.raises(StoreError) as e:        # other bytes: refused as ever
                st.write("lost.efsraw", b"other bytes")
            assert e.value.failure is Failure.EXISTS
