"""Write the fuzzer's seed corpus: the Windows sample and synthetic streams,
each behind a mode/slicing byte (see fuzz_codec.c)."""
import pathlib
import sys

import efsfast

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
