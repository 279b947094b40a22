"""verify-set -: a backup set checked as a tar stream flows past (any tar
of a set's folder; stream.py reads the members), nothing written."""
from __future__ import annotations

import tarfile
from typing import IO, Dict, Optional, Sequence, Tuple

from .._errors import EfsError
from .manifest import MANIFEST_NAME, SUFFIX, Entry, Manifest, ManifestError
from .stream import (MemberType, classify, forget_headers, listed_streams, mismatch, open_stream,
                     read_stream_manifest)
from .verify import Problem, Progress, VerifyReport, _check_refs, measure_stream


def verify_stream(fileobj: IO[bytes], *, mode: str = "strict", sets: Sequence[str] = (),
                  name: str = "-", progress: Optional[Progress] = None) -> VerifyReport:
    """verify-set of a tar stream, read front to back, nothing written: each
    object validates and has the size and SHA-256 the manifest gives (checked
    as it passes when the manifest came first, else when it comes), the
    manifest is whole, lists every object and nothing is missing; a stream
    that ends early is named as such.  ``progress`` is called after each
    object's member (the total: how many the manifest lists, 0 until it
    has come)."""
    report = VerifyReport(name)
    pending: Dict[str, Tuple[int, str]] = {}       # measured before the manifest came
    seen = set()
    good = set()
    listed: Optional[Dict[str, Entry]] = None
    manifest: Optional[Manifest] = None
    last = "(none)"
    read_objects = read_bytes = 0                   # (for progress)

    def check(path: str, size: int, sha256: str) -> None:
        assert listed is not None
        why = mismatch(listed.get(path), None, size, sha256)
        if why is None:
            good.add(path)
        else:
            report.problems.append(Problem(path + SUFFIX, why))
    try:
        tar = open_stream(fileobj)
        while (info := tar.next()) is not None:
            forget_headers(tar)
            m = classify(info)
            if m.type is MemberType.IGNORED:
                continue
            if m.type is MemberType.OTHER:
                report.problems.append(Problem(m.name, m.problem))
            elif m.type is MemberType.MANIFEST:
                if manifest is not None:
                    report.problems.append(Problem(m.name, "a second manifest in the stream"))
                    continue
                try:
                    manifest = read_stream_manifest(tar, info)
                except ManifestError as exc:
                    report.problems.append(Problem(MANIFEST_NAME, str(exc)))
                    return report
                listed = listed_streams(manifest)
                for path, (size, sha256) in pending.items():
                    check(path, size, sha256)
                pending.clear()
            elif m.path in seen:
                report.problems.append(Problem(m.name, "a second member for this object in "
                                                       "the tar"))
            else:
                seen.add(m.path)
                f = tar.extractfile(info)
                assert f is not None
                size, sha256, found = measure_stream(f, mode)
                report.problems.extend(Problem(m.name, msg) for msg in found)
                read_objects += 1
                read_bytes += size
                if progress is not None:
                    progress(read_objects, read_bytes, 0 if listed is None else len(listed))
                last = m.name
                if found:
                    continue
                if listed is None:
                    pending[m.path] = (size, sha256)
                else:
                    check(m.path, size, sha256)
    except tarfile.ReadError as exc:
        report.problems.append(Problem(name, f"the tar stream is truncated or damaged after "
                                             f"{last} ({exc})"))
        return report
    except EfsError as exc:         # not a tar stream at all
        report.problems.append(Problem(name, exc.strerror or str(exc)))
        return report
    if manifest is None or listed is None:
        report.problems.append(Problem(name, f"the stream ended before its manifest "
                                             f"(truncated?) after {last}"))
        return report
    report.set_id = manifest.header.set_id
    _check_refs(manifest, sets, report)
    for e in manifest.entries:
        if e.failed:
            report.problems.append(Problem(e.path, f"its backup failed: {e.failed}"))
    for path, e in listed.items():
        if path not in seen:
            report.problems.append(Problem(e.stored_name, "missing from the stream"))
        elif path in good:
            report.objects += 1
            report.bytes += e.raw_size or 0
    return report
