"""The JSON Schema of the command line's ``--json`` records, shipped with
the package (docs/JSON-OUTPUT.md): ``record-v1.json``, JSON Schema draft
2020-12.  Every record names its version in its ``schema`` field
(:data:`RECORD_VERSION`); a reader checks that field before anything else."""
from __future__ import annotations

import json
from typing import Any, Dict

RECORD_VERSION = "efsfast.record/1"
RECORD_SCHEMA_FILE = "record-v1.json"


def record_schema() -> Dict[str, Any]:
    """The schema of version 1 records, as a dict (for jsonschema and the like)."""
    from importlib.resources import files
    text = files(__name__).joinpath(RECORD_SCHEMA_FILE).read_text(encoding="utf-8")
    schema: Dict[str, Any] = json.loads(text)
    return schema
