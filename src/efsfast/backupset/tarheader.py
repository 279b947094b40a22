"""The header blocks of a tar stream's members, made directly (POSIX.1-2001
pax interchange format: a ustar header, preceded by a pax extended header
where the member needs records), in a few microseconds a member where
tarfile's TarInfo.tobuf takes ~25.

Format facts followed (POSIX pax, ustar):
  - a header is one 512-byte block: name[100] mode[8] uid[8] gid[8]
    size[12] mtime[12] chksum[8] typeflag[1] linkname[100] magic[6]
    version[2] uname[32] gname[32] devmajor[8] devminor[8] prefix[155],
    then NULs; numbers in octal, NUL-terminated, zero-padded;
  - chksum is the sum of the block's bytes with the chksum field counted as
    eight spaces, written as six octal digits, a NUL and a space;
  - a member's data is padded with NULs to a whole block;
  - a pax extended header (typeflag 'x') is a member whose data is records
    ``"LEN KEY=VALUE\\n"`` (LEN: the record's length in decimal, itself
    included; values UTF-8), which apply to the member that follows:
    ``path`` where the name does not fit the 100-byte ASCII name field,
    ``size`` where the size does not fit 11 octal digits, any other key
    (``comment`` here) kept for readers that want it;
  - the archive ends with two zero blocks, and (as tar writes it) is padded
    to a whole record of 20 blocks.
"""
from __future__ import annotations

from enum import Enum, IntEnum
from typing import Optional

BLOCK = 512
RECORD = 20 * BLOCK
END = bytes(2 * BLOCK)
# tarfile's name for the pax extended header's own member (readers take its
# records, never the name: tarfile's, so a stream reads as it did)
PAX_HEADER_NAME = b"././@PaxHeader"
MEMBER_MODE = 0o644


class TypeFlag(bytes, Enum):
    REGULAR = b"0"
    PAX_EXTENDED = b"x"


class Field(IntEnum):
    """Width of each ustar field, in order."""
    NAME = 100
    MODE = 8
    UID = 8
    GID = 8
    SIZE = 12
    MTIME = 12
    CHKSUM = 8


# the largest value an octal field of this width holds (its last byte a NUL)
MAX_SIZE = 8 ** (Field.SIZE - 1) - 1
_MAGIC = b"ustar\x0000"
# (plain ints and bytes: an IntEnum member costs an attribute lookup per use,
# and these run a few times per member)
_NAME = int(Field.NAME)
_NAME_NULS = bytes(_NAME)
_SPACE = ord(" ")


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def padding(size: int) -> bytes:
    """The NULs after ``size`` bytes of data, to a whole block."""
    return bytes(-size % BLOCK)


def pax_record(key: bytes, value: bytes) -> bytes:
    """One ``"LEN KEY=VALUE\\n"`` record; LEN counts its own digits."""
    body = b" %s=%s\n" % (key, value)
    n = len(body) + 1
    while n != len(body) + len(str(n)):      # (at most twice: a digit more or not)
        n = len(body) + len(str(n))
    return b"%d%s" % (n, body)


class _Template:
    """A header block's fixed fields, around the three that vary (name,
    size, checksum), and their share of the checksum."""

    def __init__(self, mode: int, mtime: int, typeflag: TypeFlag):
        # mode, uid, gid; then size; then mtime
        self.ids = _octal(mode, Field.MODE) + _octal(0, Field.UID) + _octal(0, Field.GID)
        self.mtime = _octal(mtime, Field.MTIME)
        # typeflag, linkname, magic and version, uname, gname, devmajor,
        # devminor, prefix, and the block's end: NULs but for two
        self.rest = typeflag.value + bytes(100) + _MAGIC + bytes(BLOCK - 265)
        self.sum = sum(self.ids) + sum(self.mtime) + sum(self.rest) + 8 * _SPACE

    def block(self, name: bytes, size: int) -> bytes:
        size_field = b"%011o\0" % size
        return b"".join((name, _NAME_NULS[len(name):], self.ids, size_field, self.mtime,
                         b"%06o\0 " % (self.sum + sum(name) + sum(size_field)), self.rest))


class HeaderMaker:
    """The headers of one stream's regular-file members, every member
    with mode 0644, owner 0:0 and the same modification time."""

    def __init__(self, mtime: int):
        self.file = _Template(MEMBER_MODE, mtime, TypeFlag.REGULAR)
        self.pax = _Template(0, 0, TypeFlag.PAX_EXTENDED)

    def member(self, name: str, size: int, comment: Optional[bytes] = None) -> bytes:
        """The header blocks of a regular file ``name`` of ``size`` bytes
        (its data and :func:`padding` follow), with ``comment`` (UTF-8) as
        the pax ``comment`` record where given."""
        encoded = name.encode("utf-8")
        records = b"" if comment is None else pax_record(b"comment", comment)
        if len(encoded) > _NAME or not encoded.isascii():
            records += pax_record(b"path", encoded)
            # the name field as readers without pax see it: ASCII, cut
            encoded = name.encode("ascii", "replace")[:_NAME]
        if size > MAX_SIZE:
            records += pax_record(b"size", b"%d" % size)
            size = 0
        head = self.file.block(encoded, size)
        if not records:
            return head
        n = len(records)
        return b"".join((self.pax.block(PAX_HEADER_NAME, n), records, bytes(-n % BLOCK), head))


def end_of_archive(offset: int) -> bytes:
    """The two zero blocks that end an archive ``offset`` bytes long so
    far, and the zeros that fill its last record."""
    return END + bytes(-(offset + len(END)) % RECORD)
