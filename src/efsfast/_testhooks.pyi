"""Type stubs for efsfast._testhooks (tests only)."""
from typing import Any, Tuple

from efsfast._core import RawContext

def _buffer_counts() -> Tuple[int, int, int]: ...
def _write_misbehaving(raw: RawContext, data: Any, how: int, at_call: int) -> None: ...
