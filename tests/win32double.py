"""Puts the advapi32 test double (tests/win32/advapi32_double.c, built by
.ci/windows as efsdouble.dll) between efsfast's extension modules and
advapi32, without changing the shipped binaries: the four raw-EFS entries of
each loaded efsfast .pyd's import address table are pointed at the double's
functions, and put back afterwards.  Windows only; tests only."""
from __future__ import annotations

import contextlib
import ctypes
import os
import struct
import sys

FUNCTIONS = ("OpenEncryptedFileRawW", "ReadEncryptedFileRaw", "WriteEncryptedFileRaw",
             "CloseEncryptedFileRaw")
COUNTERS = ("opens", "closes", "open_contexts", "import_calls", "export_calls", "bytes_in",
            "bytes_out", "short_fills", "guard_violations", "overclaims", "max_offered",
            "failed_imports")
PAGE_READWRITE = 0x04
IMPORT_BUFFER = 66048
EXPORT_BLOCK = 65536


def dll_path():
    return os.environ.get("EFSFAST_WIN32_DOUBLE")


def why_unavailable():
    if sys.platform != "win32":
        return "the advapi32 double runs on Windows (.ci/windows runs it under Wine)"
    if not dll_path() or not os.path.isfile(dll_path()):
        return "EFSFAST_WIN32_DOUBLE does not name the built double (.ci/windows builds efsdouble.dll)"
    return None


def _import_slots(base: int, dll_name: bytes):
    """{function name: address of its import address table slot} for the
    imports from ``dll_name`` of the PE image mapped at ``base`` (PE32+)."""
    def u16(off):
        return struct.unpack("<H", ctypes.string_at(base + off, 2))[0]

    def u32(off):
        return struct.unpack("<I", ctypes.string_at(base + off, 4))[0]

    def u64(off):
        return struct.unpack("<Q", ctypes.string_at(base + off, 8))[0]

    nt = u32(0x3C)
    opt = nt + 4 + 20
    if u16(opt) != 0x20B:
        raise OSError("not a PE32+ image")
    import_rva = u32(opt + 112 + 8)          # data directory 1: imports
    slots = {}
    desc = import_rva
    while True:
        lookup, _, _, name_rva, iat = struct.unpack("<5I", ctypes.string_at(base + desc, 20))
        if name_rva == 0:
            break
        if ctypes.string_at(base + name_rva).lower() == dll_name.lower():
            i = 0
            table = lookup or iat
            while True:
                entry = u64(table + 8 * i)
                if entry == 0:
                    break
                if not entry & (1 << 63):                  # by name, not ordinal
                    name = ctypes.string_at(base + (entry & 0x7FFFFFFF) + 2).decode()
                    slots[name] = base + iat + 8 * i
                i += 1
        desc += 20
    return slots


class Double:
    """The loaded double: counters, settings, fault injection."""

    def __init__(self):
        self.dll = ctypes.CDLL(dll_path())
        self.dll.double_counter.restype = ctypes.c_int64
        self.dll.double_set_schedule.argtypes = [ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint64]
        self.dll.double_fail_write.argtypes = [ctypes.c_int64, ctypes.c_uint32]
        self.dll.double_fail_read.argtypes = [ctypes.c_int64, ctypes.c_uint32]
        self.dll.double_fail_open.argtypes = [ctypes.c_uint32]
        self.dll.double_is_encrypted.argtypes = [ctypes.c_wchar_p]
        self.round_trips = 0

    def address(self, name: str) -> int:
        return ctypes.cast(getattr(self.dll, name), ctypes.c_void_p).value

    def counters(self) -> dict:
        return {name: self.dll.double_counter(i) for i, name in enumerate(COUNTERS)}

    def reset(self):
        self.dll.double_reset()

    def schedule(self, buffer_size: int, min_size: int, seed: int):
        assert self.dll.double_set_schedule(buffer_size, min_size, seed) == 0

    def fail_open(self, code: int):
        self.dll.double_fail_open(code)

    def fail_write(self, nth: int, code: int):
        self.dll.double_fail_write(nth, code)

    def fail_read(self, nth: int, code: int):
        self.dll.double_fail_read(nth, code)

    def is_encrypted(self, path) -> bool:
        return bool(self.dll.double_is_encrypted(os.fspath(path)))


_double = None


def load() -> Double:
    global _double
    if _double is None:
        _double = Double()
    return _double


@contextlib.contextmanager
def patched():
    """Point every loaded efsfast extension's advapi32 raw-EFS imports at the
    double for the duration; yields the Double."""
    double = load()
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.GetModuleHandleW.restype = ctypes.c_void_p
    kernel32.GetModuleHandleW.argtypes = [ctypes.c_wchar_p]
    kernel32.VirtualProtect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint32,
                                        ctypes.POINTER(ctypes.c_uint32)]
    saved = []

    def write_slot(slot: int, value: int) -> int:
        old = ctypes.c_uint32()
        if not kernel32.VirtualProtect(slot, 8, PAGE_READWRITE, ctypes.byref(old)):
            raise ctypes.WinError(ctypes.get_last_error())
        previous = ctypes.c_uint64.from_address(slot).value
        ctypes.c_uint64.from_address(slot).value = value
        kernel32.VirtualProtect(slot, 8, old.value, ctypes.byref(old))
        return previous

    modules = [m for name, m in list(sys.modules.items())
               if name.startswith("efsfast.") and getattr(m, "__file__", "").endswith(".pyd")]
    try:
        found = 0
        for m in modules:
            base = kernel32.GetModuleHandleW(m.__file__)
            if not base:
                raise ctypes.WinError(ctypes.get_last_error())
            slots = _import_slots(base, b"ADVAPI32.dll")
            for name in FUNCTIONS:
                if name in slots:
                    saved.append((slots[name], write_slot(slots[name], double.address(name))))
                    found += 1
        if found < len(FUNCTIONS):
            raise AssertionError(f"only {found} of the four raw-EFS imports found in {modules}")
        double.reset()
        yield double
    finally:
        for slot, previous in reversed(saved):
            write_slot(slot, previous)


def record(key: str, value) -> None:
    """Append a fact for .ci/windows's summary line (EFSFAST_WIN32_REPORT)."""
    path = os.environ.get("EFSFAST_WIN32_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{key}={value}\n")
