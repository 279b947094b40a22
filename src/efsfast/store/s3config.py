"""Where an S3 set is and how to reach it, read the way AWS tools read it.

``s3://BUCKET/PREFIX`` names the set; the endpoint, region and credentials
come from the environment and the shared files, in the AWS CLI's order:

- endpoint: ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, then the
  profile's ``endpoint_url`` (AWS's own endpoint where none is set);
- credentials: ``AWS_ACCESS_KEY_ID`` + ``AWS_SECRET_ACCESS_KEY`` (+
  ``AWS_SESSION_TOKEN``), then the profile (``AWS_PROFILE``, else
  ``default``) in the shared credentials file (``AWS_SHARED_CREDENTIALS_FILE``,
  else ~/.aws/credentials) and the config file (``AWS_CONFIG_FILE``, else
  ~/.aws/config); where neither has keys, the client library's own chain
  (web identity, container and instance credentials);
- region: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's
  ``region``, else us-east-1;
- TLS: an ``http://`` endpoint is plain HTTP (a local store); any other is
  verified, against the system roots plus ``AWS_CA_BUNDLE`` (or the
  profile's ``ca_bundle``) where one is named.

Nothing here imports the client library.  Secrets live in a ``Secret``
whose repr and str are masked, so they cannot reach a message by accident.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, Mapping, Optional, Tuple

from .base import Failure, StoreError

if TYPE_CHECKING:
    import configparser

SCHEME = "s3://"
DEFAULT_REGION = "us-east-1"
# S3's rules for new bucket names, plus the upper case and underscores of
# legacy names and other stores (SeaweedFS, Ceph) that accept them
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")


def is_s3_url(name: object) -> bool:
    return isinstance(name, str) and name[:len(SCHEME)].lower() == SCHEME


def parse_url(url: str) -> Tuple[str, str]:
    """``s3://BUCKET[/PREFIX]`` -> (bucket, prefix without slashes at its
    ends; '' for the bucket's top)."""
    if not is_s3_url(url):
        raise StoreError(Failure.CONFIG, f"not an s3:// URL: {url!r}")
    rest = url[len(SCHEME):]
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise StoreError(Failure.CONFIG, f"not a bucket name: {bucket!r} (3-255 letters, "
                         "digits, '.', '-' or '_')", url)
    prefix = prefix.strip("/")
    if prefix and any(s in ("", ".", "..") for s in prefix.split("/")):
        raise StoreError(Failure.CONFIG, "the prefix has an empty, '.' or '..' part", url)
    if "\\" in prefix or "\0" in prefix:
        raise StoreError(Failure.CONFIG, "the prefix holds a backslash or a NUL", url)
    return bucket, prefix


class Secret:
    """A credential: its value is ``reveal()``ed only where it is handed to
    the client library; repr and str show a mask."""
    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Tuple[object, ...]:
        raise TypeError("a Secret is not pickled")


@dataclass(frozen=True)
class S3Settings:
    """Everything needed to reach one S3 set; ``secrets()`` lists the
    values no message may carry."""
    bucket: str
    prefix: str
    endpoint: Optional[str]
    region: str
    access_key_id: Optional[Secret] = field(default=None, repr=False)
    secret_access_key: Optional[Secret] = field(default=None, repr=False)
    session_token: Optional[Secret] = field(default=None, repr=False)
    ca_bundle: Optional[str] = None
    credentials_from: str = "library"   # where the keys came from, for messages

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}" if self.prefix else \
            f"{SCHEME}{self.bucket}"

    @property
    def plain_http(self) -> bool:
        return self.endpoint is not None and self.endpoint.lower().startswith("http://")

    def secrets(self) -> Tuple[str, ...]:
        return tuple(s.reveal() for s in (self.access_key_id, self.secret_access_key,
                                          self.session_token) if s is not None and s.reveal())


def _read_ini(path: str) -> configparser.RawConfigParser:
    # imported here: every command line tests for s3:// through this module,
    # and configparser (with uuid, imported late too) is ~3 ms of CPU at each start-up
    import configparser
    cp = configparser.RawConfigParser()
    try:
        with open(path, encoding="utf-8") as f:
            cp.read_file(f, source=path)
    except FileNotFoundError:
        pass
    except (OSError, configparser.Error, UnicodeDecodeError) as exc:
        # the message names the file and the line, never a value in it
        raise StoreError(Failure.CONFIG, f"cannot read the AWS settings file: "
                         f"{type(exc).__name__}", path) from None
    return cp


def _profile_sections(env: Mapping[str, str]) -> Tuple[str, Dict[str, str], Dict[str, str]]:
    """The profile's name, its credentials-file section and its config-file
    section (``[NAME]`` in the first, ``[profile NAME]`` or ``[default]``
    in the second)."""
    name = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    home = os.path.expanduser("~")
    cred_path = env.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.join(home, ".aws", "credentials")
    conf_path = env.get("AWS_CONFIG_FILE") or os.path.join(home, ".aws", "config")
    creds, conf = _read_ini(os.path.expanduser(cred_path)), _read_ini(os.path.expanduser(conf_path))
    cred_sec = dict(creds.items(name)) if creds.has_section(name) else {}
    conf_name = name if name == "default" else f"profile {name}"
    conf_sec = dict(conf.items(conf_name)) if conf.has_section(conf_name) else {}
    if env.get("AWS_PROFILE") and not cred_sec and not conf_sec:
        raise StoreError(Failure.CONFIG, f"AWS_PROFILE names profile {name!r}, which is "
                         f"in neither {cred_path} nor {conf_path}")
    return name, cred_sec, conf_sec


def settings_from_env(url: str, env: Optional[Mapping[str, str]] = None) -> S3Settings:
    """The settings for ``url`` from ``env`` (default os.environ) and the
    shared files, in the AWS CLI's order (see the module's docstring)."""
    env = os.environ if env is None else env
    bucket, prefix = parse_url(url)
    name, cred_sec, conf_sec = _profile_sections(env)

    def pick(*values: Optional[str]) -> Optional[str]:
        return next((v for v in values if v), None)

    endpoint = pick(env.get("AWS_ENDPOINT_URL_S3"), env.get("AWS_ENDPOINT_URL"),
                    conf_sec.get("endpoint_url"))
    if endpoint is not None and not re.match(r"(?i)https?://[^/\s]+", endpoint):
        raise StoreError(Failure.CONFIG, f"the endpoint is not an http:// or https:// URL: "
                         f"{endpoint!r}", url)
    region = pick(env.get("AWS_REGION"), env.get("AWS_DEFAULT_REGION"),
                  conf_sec.get("region")) or DEFAULT_REGION
    key, secret, token = (env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY"),
                          env.get("AWS_SESSION_TOKEN"))
    source = "environment"
    if not (key and secret):
        for sec, where in ((cred_sec, "credentials file"), (conf_sec, "config file")):
            if sec.get("aws_access_key_id") and sec.get("aws_secret_access_key"):
                key, secret = sec["aws_access_key_id"], sec["aws_secret_access_key"]
                token = sec.get("aws_session_token")
                source = f"profile {name!r} ({where})"
                break
        else:
            if key or secret:
                raise StoreError(Failure.CONFIG, "only one of AWS_ACCESS_KEY_ID and "
                                 "AWS_SECRET_ACCESS_KEY is set", url)
            key = secret = token = None
            source = "library"
    ca_bundle = pick(env.get("AWS_CA_BUNDLE"), conf_sec.get("ca_bundle"))
    return S3Settings(bucket=bucket, prefix=prefix, endpoint=endpoint.rstrip("/") if endpoint
                      else None, region=region,
                      access_key_id=Secret(key) if key else None,
                      secret_access_key=Secret(secret) if secret else None,
                      session_token=Secret(token) if token else None,
                      ca_bundle=ca_bundle, credentials_from=source)
