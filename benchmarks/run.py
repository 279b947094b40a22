"""Run the efsfast benchmarks: python benchmarks/run.py [--quick] [...]

The same as `efsfast bench`, except that a full run (no --quick, no --out)
writes the committed results, benchmarks/results/ of this checkout; take it
with the machine otherwise idle (the results mark a noisy run as such).
"""
import os
import sys

from efsfast.bench.run import main

args = sys.argv[1:]
if "--quick" not in args and not any(a == "--out" or a.startswith("--out=") for a in args):
    args += ["--out", os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")]
sys.exit(main(args))
