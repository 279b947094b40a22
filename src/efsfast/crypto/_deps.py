"""The one optional dependency of decryption, and what to say when it is missing."""
from __future__ import annotations

INSTALL_HINT = ("pip install 'efsfast[decrypt]' (from a checkout: pip install '.[decrypt]'), "
                "or pip install cryptography")


class MissingDependencyError(ImportError):
    error_kind = "dependency"   # efsfast.messages.ErrorKind.DEPENDENCY (the --json "kind")


def require_cryptography() -> None:
    """Raise a clear error when ``cryptography`` (key loading, RSA, and the
    ECB pass without AES-NI) is not installed."""
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "decryption needs the 'cryptography' package, which is not installed: "
            + INSTALL_HINT) from None
