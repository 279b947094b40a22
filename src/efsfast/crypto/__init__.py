"""Decryption without Windows, and proof that backups can be decrypted
(spec section 10): keys from PFX/PEM/DER files, the FEK unwrapped with RSA
by ``cryptography``, the sectors decrypted in C without the GIL
(``_decrypt.pyx``, ``_c/efs_sector.c``).  ``cryptography`` is the optional
dependency: ``pip install 'efsfast[decrypt]'``."""
from ._deps import MissingDependencyError
from .decrypt import Decrypted, DecryptResult, decrypt, decrypt_bytes
# (encrypt stays a plain import: its module and its function share the name,
# and a lazy name would be shadowed by the module once anything imports it)
from .encrypt import EncryptResult, Recipient, encrypt, encrypt_file, recipient
from .fek import Algorithm, Entry, NotDecryptableError, Opened
from .keys import Key, KeyLoadError, load_keys

# Proving (verify --key), certificates and folder walks are imported when
# first used (PEP 562): `efsfast decrypt` of one stream needs none of them.
TYPE_CHECKING = False
_LAZY = {
    ".certs": ("NotACertificateError", "load_certificate"),
    "..treewalk": ("find_sources",),    # (verify and verify --key read folders alike)
    ".verify": ("Proof", "check", "check_many", "prove", "prover", "why_not"),
}
if TYPE_CHECKING:
    from ..treewalk import find_sources
    from .certs import NotACertificateError, load_certificate
    from .verify import Proof, check, check_many, prove, prover, why_not
else:
    from .._lazy import attach
    __getattr__, __dir__ = attach(__name__, globals(), _LAZY)
    del attach

__all__ = ["Algorithm", "Decrypted", "DecryptResult", "EncryptResult", "Entry", "Key",
           "KeyLoadError", "MissingDependencyError", "NotACertificateError",
           "NotDecryptableError", "Opened", "Proof", "Recipient", "check", "check_many",
           "decrypt", "decrypt_bytes", "encrypt", "encrypt_file", "find_sources",
           "load_certificate", "load_keys", "prove", "prover", "recipient", "why_not"]
