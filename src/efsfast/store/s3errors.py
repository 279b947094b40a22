"""The client library's errors as StoreErrors that say what happened in a
line, with the HTTP status and the S3 error code, and nothing secret.

obstore's messages carry the request URL, the server's XML answer and a
debug dump of the Rust error; they name no credentials (checked in the
tests), but they are long: the line kept here is the status, the code and
the server's own message, and the secrets the settings know of are masked
in it all the same."""
from __future__ import annotations

import re
from typing import Iterable, Optional, Tuple

from .base import Failure, StoreError

_STATUS = re.compile(r"status code: (\d{3})")
_CODE = re.compile(r"<Code>([A-Za-z0-9_.-]+)</Code>")
_MESSAGE = re.compile(r"<Message>([^<]{1,300})</Message>")
# no answer at all: connection refused or reset, DNS, TLS, timeouts
_NETWORK = re.compile(r"(?i)(error sending request|connection refused|connection reset|"
                      r"broken pipe|timed out|timeout|dns error|tcp connect|"
                      r"connection closed|unexpected eof|invalid certificate|certificate)")
_TLS = re.compile(r"InvalidCertificate\(\s*([A-Za-z]+)")
_BAD_KEYS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
             "TokenRefreshRequired", "AuthorizationHeaderMalformed", "InvalidSecurity",
             "InvalidClientTokenId", "MissingSecurityHeader"}
_WHAT = {
    Failure.NOT_FOUND: "no such object",
    Failure.EXISTS: "an object is already there",
    Failure.NO_BUCKET: "the bucket does not exist",
    Failure.BAD_CREDENTIALS: "the credentials were refused (unknown key, wrong secret or "
                             "expired token)",
    Failure.ACCESS_DENIED: "access denied",
    Failure.UNAVAILABLE: "the store did not answer, or failed, after the retries",
    Failure.CONFIG: "the request was refused as malformed",
    Failure.OTHER: "the store refused the request",
}


def mask(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


def classify(exc: BaseException
             ) -> Tuple[Failure, Optional[int], Optional[str], Optional[str]]:
    """(Failure, status or None, S3 code or None, server message or None)."""
    text = str(exc)
    name = type(exc).__name__
    m = _STATUS.search(text)
    status = int(m.group(1)) if m else None
    code = (_CODE.search(text) or [None, None])[1]
    message = (_MESSAGE.search(text) or [None, None])[1]
    if name == "AlreadyExistsError" or status == 412 or code == "PreconditionFailed":
        kind = Failure.EXISTS
    elif code == "NoSuchBucket":
        kind = Failure.NO_BUCKET
    elif name == "NotFoundError" or isinstance(exc, FileNotFoundError) or status == 404:
        kind = Failure.NOT_FOUND
    elif code in _BAD_KEYS or name == "UnauthenticatedError" or status == 401:
        kind = Failure.BAD_CREDENTIALS
    elif name == "PermissionDeniedError" or status == 403:
        kind = Failure.ACCESS_DENIED
    elif code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "InvalidBucketName") \
            or status in (301, 400):
        kind = Failure.CONFIG
    elif (status is not None and status >= 500) or (status is None and _NETWORK.search(text)):
        kind = Failure.UNAVAILABLE
    else:
        kind = Failure.OTHER
    return kind, status, code, message


def store_error(exc: BaseException, url: str, secrets: Iterable[str],
                doing: Optional[str] = None) -> StoreError:
    """``exc`` from the client library as a StoreError naming ``url``."""
    kind, status, code, message = classify(exc)
    parts = [f"{doing}: " if doing else "", _WHAT[kind]]
    detail = " ".join(str(x) for x in (f"HTTP {status}" if status else None, code) if x)
    if message and message not in _WHAT[kind]:
        detail = f"{detail}: {message}" if detail else message
    if kind is Failure.UNAVAILABLE and not status:
        # the library's first line says which connection failed and how
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        detail = re.sub(r"\s+", " ", re.sub(r"https?://\S+", "", first))[:200].strip()
        tls = _TLS.search(str(exc))
        if tls:     # the reason is deep in the library's debug dump: say it
            detail += f"; TLS: the server's certificate was refused ({tls.group(1)})"
    if kind is Failure.ACCESS_DENIED and status == 403 and not code:
        detail += " (a HEAD request gets no error code: wrong keys look the same)"
    if kind is Failure.CONFIG and code == "PermanentRedirect":
        detail += " (the bucket is in another region: set AWS_REGION)"
    text = "".join(parts) + (f" ({detail})" if detail else "")
    return StoreError(kind, mask(text, secrets), url)
