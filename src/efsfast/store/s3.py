"""A set in an S3 bucket (AWS S3 or an S3-compatible store: MinIO, Ceph
RGW, SeaweedFS), through obstore (Rust's object_store; why obstore:
docs/OBJECT-STORAGE.md).

A pool of ``jobs`` threads runs every request, so at most ``jobs`` are in
flight whatever the number of calling threads; the calls here block until
their request is done, and ``submit_*`` hand back futures for pipelining.
The requests use obstore's synchronous functions: its asynchronous ones
leave Rust threads touching Python objects after the awaited result, which
aborted 5 of 40 short processes at interpreter exit here (Fatal Python
error: PyGILState_Release), against none of 40 with the synchronous ones.
Bytes in memory up to ``single_put_max`` go in one PUT, streams and larger
objects in a multipart upload with its parts in parallel; reads of large
objects are ranged GETs in parallel.  Bytes held by the store in flight (read-ahead,
parts being sent) stay under ``memory_limit``.

Never a hang, whatever the callers' threads, ``jobs``, ``memory_limit`` and
object sizes: memory is taken before a request thread is asked for, never
the reverse.  A request thread never waits for memory (a streamed upload's
parts are reserved by the thread that submits it, and given back when the
request ends), and memory is taken in one piece per request or per window
of ranged GETs, so no thread waits for memory while holding some.  Thus
every request queued runs once a thread is free, every thread holding
memory gets its requests done and gives it back, and a wait for memory only
ever waits for requests already running.  (Taking memory on a request
thread hung backups whose callers outnumbered ``jobs``: every request
thread held by a streamed upload waiting for memory that in-memory objects
held while they waited for a request thread.  Taking a window's memory
chunk by chunk hung concurrent readers: each held one chunk and waited for
a second.)  Refusing such combinations up front was not chosen: which ones
hang depends on object sizes known only as the work proceeds.

Transient failures (5xx, timeouts, connection resets) are retried by the
library with exponential backoff and jitter, at most ``retries`` times and
within ``retry_timeout_s``.
"""
from __future__ import annotations

import concurrent.futures
import re
import threading
import time
from datetime import timedelta
from typing import Any, Callable, Dict, Iterator, List, Optional, TypeVar, cast

from .base import (DEFAULT_JOBS, DEFAULT_MEMORY_LIMIT, DEFAULT_PART_SIZE, BytesLike, Failure,
                   MemoryBudget, ObjectInfo, Store, StoreError, WriteData, check_key)
from .s3config import S3Settings, settings_from_env
from .s3errors import mask, store_error

T = TypeVar("T")
INSTALL_HINT = "pip install 'efsfast[s3]'"
MIN_PART_SIZE = 5 << 20             # S3's smallest part (all but the last)
MAX_SINGLE_PUT = 5 << 30            # S3's largest single PUT
MANIFEST_MAX = MAX_SINGLE_PUT
DEFAULT_SINGLE_PUT = 64 << 20       # bytes in memory up to this go in one PUT


def _import_obstore() -> Any:
    try:
        import obstore
        import obstore.store
    except ImportError as exc:
        raise StoreError(Failure.MISSING_LIBRARY, "s3:// sets need the S3 client library "
                         f"obstore, which is not installed ({exc.name or exc}): "
                         f"{INSTALL_HINT}") from None
    return obstore


def _is_bytes_like(data: object) -> bool:
    try:
        memoryview(data)        # type: ignore[arg-type]
        return True
    except TypeError:
        return False


class S3Store(Store):
    """The objects of one set: keys under ``s3://BUCKET/PREFIX/``."""

    atomic_create = True        # PUT with If-None-Match: * (AWS since 2024, MinIO,
    #                             Ceph RGW, SeaweedFS; see docs/OBJECT-STORAGE.md)

    def __init__(self, settings: S3Settings, *, jobs: int = DEFAULT_JOBS,
                 memory_limit: int = DEFAULT_MEMORY_LIMIT, part_size: int = DEFAULT_PART_SIZE,
                 retries: int = 4, retry_timeout_s: float = 60.0,
                 request_timeout_s: float = 300.0, connect_timeout_s: float = 10.0,
                 conditional_create: bool = True, single_put_max: int = DEFAULT_SINGLE_PUT):
        if jobs < 1:
            raise ValueError("jobs must be at least 1")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} (S3's smallest part)")
        if memory_limit < part_size:
            raise ValueError("memory_limit must hold at least one part")
        self._obs = _import_obstore()
        self.settings = settings
        self.jobs = jobs
        self.part_size = part_size
        self.single_put_max = min(max(single_put_max, part_size), MAX_SINGLE_PUT)
        self.budget = MemoryBudget(memory_limit)
        self.atomic_create = conditional_create
        self._secrets = settings.secrets()
        self.tls_limit: Optional[str] = None
        self._retries, self._retry_timeout_s = retries, retry_timeout_s
        self._store = self._make_store(retries, retry_timeout_s, request_timeout_s,
                                       connect_timeout_s)
        self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._start_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> "S3Store":
        """The store for ``s3://BUCKET/PREFIX``, configured from the
        environment and the shared AWS files (s3config)."""
        return cls(settings_from_env(url), **options)

    def _make_store(self, retries: int, retry_timeout_s: float, request_timeout_s: float,
                    connect_timeout_s: float) -> Any:
        s = self.settings
        config: Dict[str, Any] = {"region": s.region}
        if s.endpoint:
            config["endpoint"] = s.endpoint
        if s.access_key_id is not None and s.secret_access_key is not None:
            config["access_key_id"] = s.access_key_id.reveal()
            config["secret_access_key"] = s.secret_access_key.reveal()
            if s.session_token is not None:
                config["session_token"] = s.session_token.reveal()
        client: Dict[str, Any] = {"connect_timeout": timedelta(seconds=connect_timeout_s),
                                  "timeout": timedelta(seconds=request_timeout_s),
                                  "pool_max_idle_per_host": str(max(self.jobs, 8))}
        if s.plain_http:
            client["allow_http"] = True         # a local store: no TLS to verify
        elif s.ca_bundle:
            try:
                with open(s.ca_bundle, "rb") as f:
                    client["root_certificate"] = f.read()     # added to the system roots
            except OSError as exc:
                raise StoreError(Failure.CONFIG, f"cannot read the CA bundle named by "
                                 f"AWS_CA_BUNDLE: {exc.strerror}", s.ca_bundle) from None
        retry = {"max_retries": retries, "retry_timeout": timedelta(seconds=retry_timeout_s),
                 "backoff": {"init_backoff": timedelta(milliseconds=200),
                             "max_backoff": timedelta(seconds=5), "base": 2}}
        try:
            return self._new_client(config, client, retry)
        except StoreError as exc:
            if "root_certificate" not in client or "root_certificate" not in str(exc):
                raise
        # an obstore that cannot add roots (older releases, such as the last
        # ones for Python 3.9 and 3.10): verify against the system's roots
        # alone, and say so where that fails (tls_limit)
        del client["root_certificate"]
        self.tls_limit = (f"obstore {getattr(self._obs, '__version__', '?')} cannot add "
                          "AWS_CA_BUNDLE's certificates to the trusted roots")
        return self._new_client(config, client, retry)

    def _new_client(self, config: Dict[str, Any], client: Dict[str, Any],
                    retry: Dict[str, Any]) -> Any:
        s = self.settings
        try:
            return self._obs.store.S3Store(s.bucket, prefix=s.prefix or None, config=config,
                                           client_options=client, retry_config=retry)
        except Exception as exc:        # a configuration the library refuses
            raise StoreError(Failure.CONFIG, "the S3 settings were refused: "
                             + mask(str(exc).splitlines()[0], self._secrets),
                             s.url) from None

    # -- naming

    @property
    def url(self) -> str:
        return self.settings.url

    def __repr__(self) -> str:
        where = f", endpoint={self.settings.endpoint!r}" if self.settings.endpoint else ""
        return f"S3Store({self.url!r}{where})"

    # -- the threads that run every request

    def _submit(self, fn: Callable[[], T]) -> "concurrent.futures.Future[T]":
        with self._start_lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.jobs, thread_name_prefix="efsfast-s3")
            return self._pool.submit(fn)

    @staticmethod
    def _wait(fut: "concurrent.futures.Future[T]") -> T:
        try:
            return fut.result()
        except BaseException:
            fut.cancel()        # Ctrl-C while waiting: a request not yet started stays so
            raise

    def _run(self, fn: Callable[[], T]) -> T:
        return self._wait(self._submit(fn))

    def _call(self, key: str, doing: str, fn: Callable[[], T], *, again: bool = True) -> T:
        """One request, its failure a StoreError.  The library retries
        transient failures itself, but older obstore releases (the last for
        Python 3.9 and 3.10) give up on some connection resets at once: such
        a failure is tried again here, the library's retries and these
        counted together against ``retries`` and ``retry_timeout_s``, where
        ``fn`` can be called again (``again``: not a stream already read)."""
        began, tries = time.monotonic(), 0
        while True:
            try:
                return fn()
            except StoreError:
                raise
            except Exception as exc:
                err = store_error(exc, self.object_url(key) if key else self.url,
                                  self._secrets, doing)
                tries += 1 + _library_retries(str(exc))
                if (again and err.failure is Failure.UNAVAILABLE and tries <= self._retries
                        and time.monotonic() - began < self._retry_timeout_s):
                    time.sleep(min(0.2 * 2 ** tries, 5.0))
                    continue
                if self.tls_limit and "certificate" in str(exc).lower():
                    err.strerror = f"{err.strerror} ({self.tls_limit})"
                raise err from None

    def close(self) -> None:
        with self._start_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self._store = None      # the library's client and its connection pool go

    # -- the contract

    def check(self, *, write: bool) -> None:
        """One listing request under the prefix: a missing bucket, refused
        keys or a denied listing end here, before anything is written.
        Whether these keys may write is learnt by the first write: a set's
        first write is its in-progress manifest, so a refusal there still
        leaves nothing behind."""
        obs = self._obs
        self._run(lambda: self._call("", "checking the set's place",
                                     lambda: obs.list_with_delimiter(self._store, None)))

    def list(self) -> Iterator[ObjectInfo]:
        def all_pages() -> List[ObjectInfo]:
            out: List[ObjectInfo] = []
            for batch in self._obs.list(self._store, None, chunk_size=1000):
                for meta in batch:
                    path = meta["path"]
                    if path.endswith("/"):      # a "folder" marker some tools make
                        continue
                    out.append(ObjectInfo(path, int(meta["size"]), meta.get("e_tag")))
            return out
        return iter(self._run(lambda: self._call("", "listing the set", all_pages)))

    def _head(self, key: str) -> Optional[ObjectInfo]:
        try:
            meta = self._call(key, "looking up", lambda: self._obs.head(self._store, key))
        except StoreError as exc:
            if exc.failure is Failure.NOT_FOUND:
                return None
            raise
        return ObjectInfo(key, int(meta["size"]), meta.get("e_tag"))

    def stat(self, key: str) -> Optional[ObjectInfo]:
        check_key(key)
        return self._run(lambda: self._head(key))

    def submit_read(self, key: str, start: int = 0,
                    end: Optional[int] = None) -> "concurrent.futures.Future[BytesLike]":
        """read() as a future: the request starts as soon as a thread is free."""
        check_key(key)
        obs = self._obs

        def whole() -> Any:
            return obs.get(self._store, key).bytes()

        def ranged() -> Any:
            if end is not None and end <= start:
                return b""
            if end is None:
                return obs.get(self._store, key, options={"range": {"offset": start}}).bytes()
            return obs.get_range(self._store, key, start=start, end=end)
        fn = whole if start == 0 and end is None else ranged
        return self._submit(lambda: self._call(key, "reading", fn))

    def read(self, key: str, start: int = 0, end: Optional[int] = None) -> BytesLike:
        return self._wait(self.submit_read(key, start, end))

    def read_chunks(self, key: str, *, size: Optional[int] = None) -> Iterator[BytesLike]:
        """Ranged GETs of ``size`` bytes (default part_size), a window of
        them in flight (within ``jobs`` and ``memory_limit``), handed out in
        order; the window's memory is counted until the last chunk is
        handed out (or the generator is closed: close it when stopping
        early, rather than leave its memory to the garbage collector)."""
        check_key(key)
        step = size or self.part_size
        info = self.stat(key)
        if info is None:
            raise StoreError(Failure.NOT_FOUND, "no such object", self.object_url(key))
        total = info.size
        if total <= step:
            yield self.read(key)
            return
        window = max(1, min(self.jobs, self.budget.limit // step, -(-total // step)))
        # the whole window's memory in one take, before any request: a
        # reader never waits for memory while holding some (module docstring)
        held = self.budget.take(window * step)
        pending: List["concurrent.futures.Future[BytesLike]"] = []
        try:
            for off in range(0, total, step):
                pending.append(self.submit_read(key, off, min(off + step, total)))
                if len(pending) < window:
                    continue
                yield self._wait(pending.pop(0))
            while pending:
                yield self._wait(pending.pop(0))
        finally:
            for fut in pending:
                fut.cancel()
            self.budget.give(held)

    def submit_write(self, key: str, data: WriteData, *, size: Optional[int] = None,
                     replace: bool = False) -> "concurrent.futures.Future[ObjectInfo]":
        """write() as a future.  Data not in memory (an iterable: a
        multipart upload read as it is sent) has its parts' memory taken
        here, by the calling thread, before the request is queued: a request
        thread never waits for memory (module docstring).  The caller must
        hold none of this store's memory while calling it with a stream."""
        check_key(key)
        if _is_bytes_like(data):
            return self._submit(lambda: self._write(key, data, size, replace))
        held = self.budget.take(self._parts() * self.part_size)
        try:
            fut = self._submit(lambda: self._write(key, data, size, replace))
        except BaseException:
            self.budget.give(held)
            raise
        # given back when the request ends, or is cancelled before it ran
        fut.add_done_callback(lambda _f: self.budget.give(held))
        return fut

    def _parts(self) -> int:
        """Parts of a multipart upload sent at once (within ``jobs`` and
        ``memory_limit``)."""
        return max(1, min(self.jobs, self.budget.limit // self.part_size))

    def write(self, key: str, data: WriteData, *, size: Optional[int] = None,
              replace: bool = False) -> ObjectInfo:
        return self._wait(self.submit_write(key, data, size=size, replace=replace))

    def _write(self, key: str, data: WriteData, size: Optional[int],
               replace: bool) -> ObjectInfo:
        obs = self._obs
        whole = _is_bytes_like(data)
        if whole:
            size = memoryview(data).nbytes    # type: ignore[arg-type]
        if whole and size is not None and size <= self.single_put_max:
            # one PUT, atomic on the server; create-only through If-None-Match.
            # Bytes already in memory go in one request up to single_put_max
            # (rclone's upload cutoff is 200 MiB): a multipart upload of a
            # 16 MiB object is five requests (a HEAD for no-replace, create,
            # two parts, complete) against one, and it cannot be create-only
            mode = "overwrite" if replace or not self.atomic_create else "create"
            if not replace and not self.atomic_create:
                self._refuse_if_there(key)
            etag = self._put_once(key, cast(BytesLike, data), mode, "writing")
            return ObjectInfo(key, size or 0, etag)
        # multipart: S3 completes an upload all or nothing and object_store
        # aborts a failed one; a create-only multipart upload is not offered
        # by the library, so no-replace is a check first (a set's own lock,
        # its create-only in-progress manifest, keeps other writers out)
        if not replace:
            self._refuse_if_there(key)
        # (a stream's memory was taken by submit_write, before this thread)
        parts = self._parts()
        res = self._call(key, "writing", lambda: obs.put(
            self._store, key, data, use_multipart=True, chunk_size=self.part_size,
            max_concurrency=parts), again=whole)
        got = size
        if got is None:
            meta = self._call(key, "looking up", lambda: obs.head(self._store, key))
            got = int(meta["size"])
        return ObjectInfo(key, got, res.get("e_tag"))

    def _refuse_if_there(self, key: str) -> None:
        if self._head(key) is not None:
            raise StoreError(Failure.EXISTS, "an object is already there", self.object_url(key))

    def publish(self, key: str, data: BytesLike) -> ObjectInfo:
        check_key(key)
        size = memoryview(data).nbytes
        if size > MANIFEST_MAX:
            raise StoreError(Failure.CONFIG, "a manifest larger than S3's largest single PUT "
                             "(5 GiB)", self.object_url(key))
        mode = "create" if self.atomic_create else "overwrite"
        if not self.atomic_create:
            self._run(lambda: self._refuse_if_there(key))
        try:
            etag = self._run(lambda: self._put_once(key, data, mode, "publishing"))
        except StoreError as exc:
            if exc.failure is Failure.EXISTS:
                raise StoreError(Failure.EXISTS, "another set's manifest is already there "
                                 "(it is never replaced)", self.object_url(key)) from None
            raise
        back = self.read(key)
        if bytes(memoryview(back)) != bytes(memoryview(data)):
            raise StoreError(Failure.EXISTS, "another writer's manifest replaced this one as it "
                             "was published (this store does not refuse creates atomically)",
                             self.object_url(key))
        return ObjectInfo(key, size, etag)

    def _put_once(self, key: str, data: BytesLike, mode: str, doing: str) -> Optional[str]:
        """One PUT.  A create refused because the object is there is read
        back first: holding exactly these bytes it is this write's own,
        landed by a try whose answer was lost before the library retried
        (the retry then meets it); only other bytes are another writer's."""
        obs = self._obs
        try:
            res = self._call(key, doing, lambda: obs.put(
                self._store, key, data, mode=mode, use_multipart=False))
            etag: Optional[str] = res.get("e_tag")
            return etag
        except StoreError as exc:
            if exc.failure is not Failure.EXISTS or mode != "create":
                raise
            there = self._call(key, doing, lambda: obs.get(self._store, key))
            if memoryview(there.bytes()) != memoryview(data):
                raise
            etag = there.meta.get("e_tag")
            return etag

    def remove(self, key: str) -> None:
        check_key(key)
        self._run(lambda: self._call(key, "removing",
                                     lambda: self._obs.delete(self._store, key)))

    def sync(self) -> None:
        """Nothing to do: S3 answers a PUT once the object is stored."""


_RETRIED = re.compile(r"after (\d+) retries|\bretries: (\d+)")


def _library_retries(text: str) -> int:
    """How often the library says it retried (its message or its debug dump
    counts them)."""
    m = _RETRIED.search(text)
    return 0 if m is None else int(m.group(1) or m.group(2))
