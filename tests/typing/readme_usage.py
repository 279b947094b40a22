"""The Python examples of the README and docs/PYTHON-API.md as a user
writes them, for ``mypy --strict`` (.ci/typecheck): the stubs and
annotations must type them without casts.  Never run (it names files
that do not exist); pytest does not collect it."""
from typing import List, Tuple

import efsfast
from efsfast.compat import win32file


def readme(raw_bytes: bytes, dir_raw: bytes, dest: str, jobs: List[Tuple[str, str]]) -> None:
    efsfast.restore("C:/restore/report.docx", raw_bytes)
    efsfast.restore("/mnt/ntfs/report.docx", "backup/report.docx.efsraw")
    efsfast.restore("/mnt/ntfs/Projects", dir_raw, directory=True)
    efsfast.restore(dest, raw_bytes, overwrite=True)

    raw = efsfast.backup("/mnt/ntfs/report.docx")       # no sink: the stream as bytes
    first: int = raw[0]
    saved = efsfast.backup("/mnt/ntfs/report.docx", "backup/report.docx.efsraw")
    size: int = saved.bytes                              # a sink: a BackupResult
    data: bytes = raw + (saved.data or b"")

    result = efsfast.restore_many([(d, s) for d, s in jobs], workers=8,
                                  progress=lambda files, nbytes, total: None)
    for failure in result.failures:
        print(failure.index, failure.dest, failure.error)
    result.raise_for_errors()

    info = efsfast.inspect("backup/report.docx.efsraw")
    print([(s.name, s.size) for s in info.streams], info.metadata.ddf[0].sid)
    checked: efsfast.RawInfo = efsfast.verify(raw)
    print(first, size, len(data), checked.raw_size)


def pywin32_style(path: str) -> None:
    try:
        h = win32file.OpenEncryptedFileRaw(path, 0)
    except win32file.error as e:
        code, funcname, message = e.args                 # pywintypes.error's shape
        print(code, funcname, message, e.winerror, e.funcname, e.strerror)
        return
    try:
        win32file.ReadEncryptedFileRaw(lambda data, ctx, n: 0, None, h)
    finally:
        win32file.CloseEncryptedFileRaw(h)
