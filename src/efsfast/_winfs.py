"""The Windows file-system steps efsfast takes itself around advapi32.

``OpenEncryptedFileRaw(CREATE_FOR_IMPORT)`` creates (or truncates) the
destination when it opens it, and a failed ``WriteEncryptedFileRaw`` leaves
whatever was written (spec 7.2, 7.7; the API has no cleanup).  So on Windows
efsfast restores into a temporary name in the destination folder and moves it
into place only once it is complete, with ``MoveFileExW``: without
``MOVEFILE_REPLACE_EXISTING`` (``os.rename``) when the destination must not be
replaced, which fails rather than replace one that appeared meanwhile; with it
(``os.replace``) for ``overwrite=True``, so the old file stays whole until its
replacement is complete.  The temporary is removed on every failure.

Paths of ``MAX_PATH`` characters or more need the ``\\\\?\\`` form unless
the machine opted in to long paths, which efsfast cannot guarantee; it uses
that form for every call it makes with a long path (Win32 docs, "Maximum Path
Length Limitation").
"""
from __future__ import annotations

import os

ERROR_FILE_EXISTS = 80
ERROR_DIR_NOT_EMPTY = 145
# CreateDirectoryW's limit (MAX_PATH minus room for an 8.3 name); files allow
# 260, but one threshold for both keeps the rule simple.
LONG_PATH = 248


def extended(path: str) -> str:
    """``path`` in the ``\\\\?\\`` form when it is too long for the plain Win32
    form (absolute, normalised: the prefix turns normalisation off); shorter
    paths are returned unchanged, so messages show what the caller wrote.
    Elsewhere than on Windows every path is returned unchanged (a POSIX path
    has no such form: the prefix would make it a different, relative name)."""
    if os.name != "nt" or path.startswith("\\\\?\\"):
        return path
    full = os.path.abspath(path)
    if len(full) < LONG_PATH:
        return path
    if full.startswith("\\\\"):
        return "\\\\?\\UNC\\" + full[2:]
    return "\\\\?\\" + full


def is_temporary(name: str) -> bool:
    """Whether ``name`` has the form of temp_beside's names (and the POSIX
    side's, efs_posix_publish.c): what a killed run may leave."""
    return (len(name) == 29 and name.startswith(".efsfast-") and name.endswith(".tmp")
            and all(c in "0123456789abcdef" for c in name[9:25]))


def temp_beside(dest: str) -> str:
    """A fixed-length hidden name in ``dest``'s folder: never longer than a
    name the file system accepts, whatever the length of ``dest``'s own name
    (and a move within one volume is a rename, never a copy)."""
    # (os.urandom, not uuid4: one call where a backup of many small objects
    # made a UUID object per object)
    return os.path.join(os.path.dirname(dest) or ".", f".efsfast-{os.urandom(8).hex()}.tmp")


def import_target(dest: str, directory: bool, overwrite: bool) -> str:
    """Where advapi32 imports ``dest``: a temporary name beside it, except a
    folder restored over an existing folder, which is imported in place (its
    raw stream is the folder's $EFS and named streams; what the folder holds
    stays, as wimlib imports onto a folder it created, spec 7.7, and as the
    POSIX side does)."""
    if directory and overwrite and os.path.isdir(extended(dest)):
        return dest
    return temp_beside(dest)


def remove_quietly(path: str) -> None:
    """Remove a temporary file or (empty) folder, on every platform; errors
    are ignored, since this runs while another error is on its way."""
    p = extended(path)
    try:
        if os.path.isdir(p) and not os.path.islink(p):
            os.rmdir(p)
        else:
            os.unlink(p)
    except OSError:
        pass


def publish(tmp: str, dest: str, overwrite: bool) -> None:
    """Move the complete restore ``tmp`` to ``dest``; on failure ``tmp`` is
    removed and the destination is as it was."""
    # imported here: _errors is light, but this module is also imported by _core
    from ._errors import EfsError
    src, dst = extended(tmp), extended(dest)
    try:
        if not overwrite:
            try:
                os.rename(src, dst)          # MoveFileExW(src, dst, 0): never replaces
            except FileExistsError:
                raise EfsError(ERROR_FILE_EXISTS, "the destination appeared during the restore "
                               "(pass overwrite=True)", dest) from None
        elif os.path.isdir(src) and os.path.isdir(dst) and not os.path.islink(dst):
            _replace_folder(src, dst, dest)
        else:
            os.replace(src, dst)             # MoveFileExW(..., MOVEFILE_REPLACE_EXISTING)
    except BaseException:
        remove_quietly(tmp)
        raise


def _replace_folder(src: str, dst: str, dest: str) -> None:
    """MoveFileExW cannot replace a folder: move the old one aside, the new
    one in, then remove the old one; a folder with contents is refused as on
    the POSIX side (ERROR_DIR_NOT_EMPTY), and a failed move puts it back."""
    from ._errors import EfsError
    if os.listdir(dst):
        raise EfsError(ERROR_DIR_NOT_EMPTY, "the destination folder is not empty", dest)
    aside = extended(temp_beside(dest))
    os.rename(dst, aside)
    try:
        os.rename(src, dst)
    except BaseException:
        os.rename(aside, dst)
        raise
    remove_quietly(aside)
