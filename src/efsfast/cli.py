"""The efsfast command line."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import List, Optional, Sequence

from . import __version__, raw
from ._errors import EfsError, RawFormatError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _info_dict(info: raw.RawInfo) -> dict:
    return dataclasses.asdict(info) | {"is_directory_like": info.is_directory_like}


def _error_dict(exc: OSError) -> dict:
    d = {"error": type(exc).__name__, "message": exc.strerror,
         "winerror": getattr(exc, "winerror", None)}
    if isinstance(exc, RawFormatError):
        d.update(rule=exc.rule, offset=exc.offset, code=exc.code)
    return d


def _print_info(path: str, info: raw.RawInfo) -> None:
    m = info.metadata
    print(f"{path}: {info.raw_size} bytes, valid")
    layout = {1: "Version 1", 2: "Version 2 (ECDH/DPAPI-NG)", 3: "Version 3 (RMS .pfile)"}
    print(f"  $EFS: {m.length} bytes, EFS_Version {m.version}, {layout.get(m.layout, '?')} layout"
          + ("" if m.supported else ", not decoded"))
    for kind, entries in (("DDF", m.ddf), ("DRF", m.drf)):
        for e in entries:
            print(f"  {kind} {e.sid or '-'}  {e.display_name or '-'}")
            print(f"      thumbprint {e.thumbprint or '-'}  container {e.container or '-'}")
            print(f"      provider {e.provider or '-'}  encrypted FEK {e.encrypted_fek_length} bytes")
    if not m.drf and m.supported:
        print("  DRF: none (no recovery agent)")
    if info.is_directory_like:
        print("  no data streams (an encrypted directory)")
    else:
        width = max(len(s.name) for s in info.streams)
        print(f"  {'stream':<{width}}  {'size':>12}  {'ciphertext':>12}  encrypted")
        for s in info.streams:
            print(f"  {s.name:<{width}}  {s.size:>12}  {s.ciphertext_size:>12}  "
                  f"{'yes' if s.encrypted else 'no'}")


def cmd_inspect(args: argparse.Namespace) -> int:
    try:
        info = raw.inspect(args.file, mode=args.mode)
    except OSError as exc:
        if args.json:
            print(json.dumps({"path": args.file} | _error_dict(exc)))
        else:
            print(f"efsfast: {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps({"path": args.file} | _info_dict(info), indent=2))
    else:
        _print_info(args.file, info)
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    failed = 0
    results = []
    for path in args.files:
        try:
            info = raw.verify(path, mode=args.mode)
        except OSError as exc:
            failed += 1
            results.append({"path": path, "valid": False} | _error_dict(exc))
            if not args.json:
                print(f"{path}: INVALID: {exc.strerror}")
        else:
            results.append({"path": path, "valid": True, "raw_size": info.raw_size,
                            "streams": len(info.streams)})
            if not args.json:
                print(f"{path}: ok ({info.raw_size} bytes, {len(info.streams)} data stream(s))")
    if args.json:
        print(json.dumps(results, indent=2))
    return EXIT_FAILED if failed else EXIT_OK


def _stream_arg(text: str) -> tuple:
    name, sep, size = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=SIZE, got {text!r}")
    return name, int(size)


def cmd_synth(args: argparse.Namespace) -> int:
    data = raw.synthetic_raw(args.size, named_streams=dict(args.stream or ()),
                             directory=args.directory, users=args.users,
                             recovery_agents=args.recovery_agents, seed=args.seed)
    with open(args.output, "xb" if not args.force else "wb") as f:
        f.write(data)
    print(f"wrote {args.output}: {len(data)} bytes")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="efsfast", description=(
        "Back up and restore Windows EFS-encrypted files as ciphertext."))
    p.add_argument("--version", action="version", version=f"efsfast {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    mode = argparse.ArgumentParser(add_help=False)
    mode.add_argument("--mode", choices=("strict", "compatible"), default="strict",
                      help="validation mode (default: strict)")

    s = sub.add_parser("inspect", parents=[mode], help="describe a raw stream")
    s.add_argument("file")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_inspect)

    s = sub.add_parser("verify", parents=[mode], help="validate raw streams (exit 0 only if all are valid)")
    s.add_argument("files", nargs="+", metavar="FILE")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("synth", help="write a synthetic (made-up but valid) raw stream")
    s.add_argument("output")
    s.add_argument("--size", type=int, default=4096, help="size of the unnamed stream")
    s.add_argument("--stream", type=_stream_arg, action="append", metavar="NAME=SIZE",
                   help="add a named stream (repeatable)")
    s.add_argument("--directory", action="store_true", help="an encrypted directory")
    s.add_argument("--users", type=int, default=1)
    s.add_argument("--recovery-agents", type=int, default=0)
    s.add_argument("--seed", type=int)
    s.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    s.set_defaults(func=cmd_synth)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("efsfast: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (EfsError, OSError, ValueError) as exc:
        print(f"efsfast: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
