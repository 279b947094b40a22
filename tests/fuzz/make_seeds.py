"""Write the fuzzer's seed corpus: the Windows sample and synthetic streams,
each behind a mode/slicing byte (see fuzz_codec.c); with --manifest, the
manifest harness's instead (fuzz_manifest.c: 40 bytes of facts, a path)."""
import pathlib
import sys

if sys.argv[1] == "--manifest":
    out = pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    paths = [b"f", "a/b c/\u00fc \u20ac.bin".encode(),
             b'q"uote\\back', b"tab\there\nnl\x01\x7f\x1f", "\U0001f600/\u65e5".encode(),
             b"bad\xff\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80"]
    facts = bytes(range(40))
    for i, path in enumerate(paths):
        (out / f"path-{i}").write_bytes(facts + path)
    # whole lines too: what the reader takes (it is also tried on each input)
    lines = [b'{"efs_sha256":"' + b"0f" * 32 + b'","kind":"file","meta":{"atime_ns":-1,'
             b'"ctime_ns":1700000000123456789,"mode":420,"mtime_ns":0,"source":"posix"},'
             b'"path":"a/\\"b\\\\\\u0001\\n\xc3\xa9","raw_size":18446744073709551615,"sha256":"'
             + b"a0" * 32 + b'","source_size":7,"type":"object"}\n',
             b'{"efs_sha256":"' + b"00" * 32 + b'","kind":"directory","path":"d","raw_size":0,'
             b'"sha256":"' + b"ff" * 32 + b'","source_size":0,"type":"object"}\n']
    for i, line in enumerate(lines):
        (out / f"line-{i}").write_bytes(line)
    print(f"{len(paths) + len(lines)} seeds in {out}")
    sys.exit(0)

import efsfast  # noqa: E402  (the codec's seeds only)

out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
sample = pathlib.Path(__file__).resolve().parents[3] / "shared/spec/samples/petitpotam-v2-test-py.efsraw.bin"
seeds = {"sample": sample.read_bytes()} if sample.is_file() else {}
seeds.update({
    "small": efsfast.synthetic_raw(12, seed=1),
    "named": efsfast.synthetic_raw(700, named_streams={"a": 3, "Zone.Identifier": 80}, seed=2),
    "dir": efsfast.synthetic_raw(directory=True, recovery_agents=2, seed=3),
    "two-segments": efsfast.synthetic_raw(70_000, seed=4),
})
for name, data in seeds.items():
    for mode in (0, 1):
        (out / f"{name}-{mode}").write_bytes(bytes([mode]) + data)
print(f"{len(seeds) * 2} seeds in {out}")
