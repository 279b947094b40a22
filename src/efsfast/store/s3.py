"""A set in an S3 bucket (AWS S3 or an S3-compatible store: MinIO, Ceph
RGW, SeaweedFS), through obstore (Rust's object_store; why obstore:
docs/OBJECT-STORAGE.md).

One event loop on a thread of its own runs every request, at most
``jobs`` at once whatever the number of calling threads; the calls here
block until their request is done, and ``submit_*`` hand back futures for
pipelining.  Objects up to ``part_size`` go in one PUT, larger ones in a
multipart upload with its parts in parallel; reads of large objects are
ranged GETs in parallel.  Bytes held by the store in flight (read-ahead,
parts being sent) stay under ``memory_limit``.

Transient failures (5xx, timeouts, connection resets) are retried by the
library with exponential backoff and jitter, at most ``retries`` times and
within ``retry_timeout_s``.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from datetime import timedelta
from typing import (Any, AsyncIterator, Awaitable, Callable, Dict, Iterable, Iterator, List,
                    Optional, Tuple, TypeVar, cast)

from .base import (DEFAULT_JOBS, DEFAULT_MEMORY_LIMIT, DEFAULT_PART_SIZE, BytesLike, Failure,
                   MemoryBudget, ObjectInfo, Store, StoreError, WriteData, check_key)
from .s3config import S3Settings, settings_from_env
from .s3errors import mask, store_error

T = TypeVar("T")
INSTALL_HINT = "pip install 'efsfast[s3]'"
MIN_PART_SIZE = 5 << 20             # S3's smallest part (all but the last)
MAX_SINGLE_PUT = 5 << 30            # S3's largest single PUT
MANIFEST_MAX = MAX_SINGLE_PUT


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
                 conditional_create: bool = True):
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
        self.budget = MemoryBudget(memory_limit)
        self.atomic_create = conditional_create
        self._secrets = settings.secrets()
        self.tls_limit: Optional[str] = None
        self._store = self._make_store(retries, retry_timeout_s, request_timeout_s,
                                       connect_timeout_s)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._sem: Optional[asyncio.Semaphore] = None
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

    # -- the event loop that runs every request

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._start_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    self._sem = asyncio.Semaphore(self.jobs)
                    ready.set()
                    loop.run_forever()
                self._thread = threading.Thread(target=run, name="efsfast-s3", daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def _submit(self, coro: Awaitable[T]) -> "concurrent.futures.Future[T]":
        return asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())  # type: ignore[arg-type]

    def _run(self, coro: Awaitable[T]) -> T:
        fut = self._submit(coro)
        try:
            return fut.result()
        except BaseException:
            fut.cancel()        # Ctrl-C while waiting: the request stops too
            raise

    async def _call(self, key: str, doing: str, fn: Callable[[], Awaitable[T]]) -> T:
        """One request, within the ``jobs`` bound, its failure a StoreError."""
        assert self._sem is not None
        async with self._sem:
            try:
                return await fn()
            except StoreError:
                raise
            except Exception as exc:
                err = store_error(exc, self.object_url(key) if key else self.url,
                                  self._secrets, doing)
                if self.tls_limit and "certificate" in str(exc).lower():
                    err.strerror = f"{err.strerror} ({self.tls_limit})"
                raise err from None

    def close(self) -> None:
        self._store = None      # the library's client and its connection pool go
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
            loop.close()

    # -- the contract

    def check(self, *, write: bool) -> None:
        """One listing request under the prefix: a missing bucket, refused
        keys or a denied listing end here, before anything is written.
        Whether these keys may write is learnt by the first write: a set's
        first write is its in-progress manifest, so a refusal there still
        leaves nothing behind."""
        obs = self._obs
        self._run(self._call("", "checking the set's place",
                             lambda: obs.list_with_delimiter_async(self._store, None)))

    def list(self) -> Iterator[ObjectInfo]:
        async def all_pages() -> List[ObjectInfo]:
            out: List[ObjectInfo] = []
            stream = self._obs.list(self._store, None, chunk_size=1000)
            async for batch in stream:
                for meta in batch:
                    path = meta["path"]
                    if path.endswith("/"):      # a "folder" marker some tools make
                        continue
                    out.append(ObjectInfo(path, int(meta["size"]), meta.get("e_tag")))
            return out
        return iter(self._run(self._call("", "listing the set", all_pages)))

    def stat(self, key: str) -> Optional[ObjectInfo]:
        check_key(key)
        try:
            meta = self._run(self._call(key, "looking up",
                                        lambda: self._obs.head_async(self._store, key)))
        except StoreError as exc:
            if exc.failure is Failure.NOT_FOUND:
                return None
            raise
        return ObjectInfo(key, int(meta["size"]), meta.get("e_tag"))

    def submit_read(self, key: str, start: int = 0,
                    end: Optional[int] = None) -> "concurrent.futures.Future[BytesLike]":
        """read() as a future: the request starts now (within ``jobs``)."""
        check_key(key)
        obs = self._obs

        async def whole() -> Any:
            res = await obs.get_async(self._store, key)
            return await res.bytes_async()

        async def ranged() -> Any:
            if end is not None and end <= start:
                return b""
            if end is None:
                res = await obs.get_async(self._store, key, options={"range": {"offset": start}})
                return await res.bytes_async()
            return await obs.get_range_async(self._store, key, start=start, end=end)
        fn = whole if start == 0 and end is None else ranged
        return self._submit(self._call(key, "reading", fn))

    def read(self, key: str, start: int = 0, end: Optional[int] = None) -> BytesLike:
        fut = self.submit_read(key, start, end)
        try:
            return fut.result()
        except BaseException:
            fut.cancel()
            raise

    def read_chunks(self, key: str, *, size: Optional[int] = None) -> Iterator[BytesLike]:
        """Ranged GETs of ``size`` bytes (default part_size), a window of
        them in flight (within ``jobs`` and ``memory_limit``), handed out in
        order; each chunk's memory is counted until the next is asked for."""
        check_key(key)
        step = size or self.part_size
        info = self.stat(key)
        if info is None:
            raise StoreError(Failure.NOT_FOUND, "no such object", self.object_url(key))
        total = info.size
        if total <= step:
            yield self.read(key)
            return
        window = max(1, min(self.jobs, self.budget.limit // step))
        pending: List[Tuple[int, "concurrent.futures.Future[BytesLike]"]] = []
        offsets = iter(range(0, total, step))
        try:
            for off in offsets:
                n = self.budget.take(min(step, total - off))
                pending.append((n, self.submit_read(key, off, min(off + step, total))))
                if len(pending) < window:
                    continue
                yield from self._hand_out(pending, key)
            while pending:
                yield from self._hand_out(pending, key)
        finally:
            for n, fut in pending:
                fut.cancel()
                self.budget.give(n)

    def _hand_out(self, pending: List[Tuple[int, "concurrent.futures.Future[BytesLike]"]],
                  key: str) -> Iterator[BytesLike]:
        n, fut = pending[0]
        data = fut.result()
        pending.pop(0)
        try:
            yield data
        finally:
            self.budget.give(n)

    def submit_write(self, key: str, data: WriteData, *, size: Optional[int] = None,
                     replace: bool = False) -> "concurrent.futures.Future[ObjectInfo]":
        """write() as a future."""
        check_key(key)
        return self._submit(self._write(key, data, size, replace))

    def write(self, key: str, data: WriteData, *, size: Optional[int] = None,
              replace: bool = False) -> ObjectInfo:
        fut = self.submit_write(key, data, size=size, replace=replace)
        try:
            return fut.result()
        except BaseException:
            fut.cancel()
            raise

    async def _write(self, key: str, data: WriteData, size: Optional[int],
                     replace: bool) -> ObjectInfo:
        obs = self._obs
        whole = _is_bytes_like(data)
        if whole:
            size = memoryview(data).nbytes    # type: ignore[arg-type]
        single = whole and size is not None and size <= self.part_size
        if single:
            # one PUT, atomic on the server; create-only through If-None-Match
            mode = "overwrite" if replace or not self.atomic_create else "create"
            if not replace and not self.atomic_create:
                await self._refuse_if_there(key)
            etag = await self._put_once(key, cast(BytesLike, data), mode, "writing")
            return ObjectInfo(key, size or 0, etag)
        # multipart: S3 completes an upload all or nothing and object_store
        # aborts a failed one; a create-only multipart upload is not offered
        # by the library, so no-replace is a check first (a set's own lock,
        # its create-only in-progress manifest, keeps other writers out)
        if not replace:
            await self._refuse_if_there(key)
        parts = max(1, min(self.jobs, self.budget.limit // self.part_size))
        held = self.budget.take(parts * self.part_size) if not whole else 0
        try:
            src: Any = data if whole else _async_chunks(data)   # type: ignore[arg-type]
            res = await self._call(key, "writing", lambda: obs.put_async(
                self._store, key, src, use_multipart=True, chunk_size=self.part_size,
                max_concurrency=parts))
        finally:
            if held:
                self.budget.give(held)
        got = size
        if got is None:
            meta = await self._call(key, "looking up", lambda: obs.head_async(self._store, key))
            got = int(meta["size"])
        return ObjectInfo(key, got, res.get("e_tag"))

    async def _refuse_if_there(self, key: str) -> None:
        try:
            await self._call(key, "looking up", lambda: self._obs.head_async(self._store, key))
        except StoreError as exc:
            if exc.failure is Failure.NOT_FOUND:
                return
            raise
        raise StoreError(Failure.EXISTS, "an object is already there", self.object_url(key))

    def publish(self, key: str, data: BytesLike) -> ObjectInfo:
        check_key(key)
        size = memoryview(data).nbytes
        if size > MANIFEST_MAX:
            raise StoreError(Failure.CONFIG, "a manifest larger than S3's largest single PUT "
                             "(5 GiB)", self.object_url(key))
        obs = self._obs
        mode = "create" if self.atomic_create else "overwrite"
        if not self.atomic_create:
            self._run(self._refuse_if_there(key))
        try:
            etag = self._run(self._put_once(key, data, mode, "publishing"))
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

    async def _put_once(self, key: str, data: BytesLike, mode: str, doing: str
                        ) -> Optional[str]:
        """One PUT.  A create refused because the object is there is read
        back first: holding exactly these bytes it is this write's own,
        landed by a try whose answer was lost before the library retried
        (the retry then meets it); only other bytes are another writer's."""
        obs = self._obs
        try:
            res = await self._call(key, doing, lambda: obs.put_async(
                self._store, key, data, mode=mode, use_multipart=False))
            etag: Optional[str] = res.get("e_tag")
            return etag
        except StoreError as exc:
            if exc.failure is not Failure.EXISTS or mode != "create":
                raise
            there = await self._call(key, doing, lambda: obs.get_async(self._store, key))
            if memoryview(await there.bytes_async()) != memoryview(data):
                raise
            etag = there.meta.get("e_tag")
            return etag

    def remove(self, key: str) -> None:
        check_key(key)
        self._run(self._call(key, "removing",
                             lambda: self._obs.delete_async(self._store, key)))

    def sync(self) -> None:
        """Nothing to do: S3 answers a PUT once the object is stored."""


async def _async_chunks(chunks: Iterable[BytesLike]) -> AsyncIterator[BytesLike]:
    """A caller's iterable of buffers for the library's async upload: each
    next() runs on a worker thread, so a slow producer (an export from a
    file system) does not stall the event loop."""
    it = iter(chunks)
    loop = asyncio.get_running_loop()
    done = object()
    while True:
        chunk = await loop.run_in_executor(None, next, it, done)
        if chunk is done:
            return
        yield chunk     # type: ignore[misc]
