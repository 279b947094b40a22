"""Decryption without Windows, and proof that backups can be decrypted
(spec section 10): keys from PFX/PEM/DER files, the FEK unwrapped with RSA
by ``cryptography``, the sectors decrypted in C without the GIL
(``_decrypt.pyx``, ``_c/efs_sector.c``).  ``cryptography`` is the optional
dependency: ``pip install 'efsfast[decrypt]'``."""
from ._deps import MissingDependencyError
from .decrypt import Decrypted, DecryptResult, decrypt, decrypt_bytes
from .certs import NotACertificateError, load_certificate
from .encrypt import EncryptResult, Recipient, encrypt, encrypt_file, recipient
from .fek import Algorithm, Entry, NotDecryptableError, Opened
from .keys import Key, KeyLoadError, load_keys
from ..treewalk import find_sources   # (verify and verify --key read folders alike)
from .verify import Proof, check, check_many, prove, prover, why_not

__all__ = ["Algorithm", "Decrypted", "DecryptResult", "EncryptResult", "Entry", "Key",
           "KeyLoadError", "MissingDependencyError", "NotACertificateError",
           "NotDecryptableError", "Opened", "Proof", "Recipient", "check", "check_many",
           "decrypt", "decrypt_bytes", "encrypt", "encrypt_file", "find_sources",
           "load_certificate", "load_keys", "prove", "prover", "recipient", "why_not"]
