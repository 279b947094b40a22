"""Run the efsfast benchmarks (same as `efsfast bench`): python benchmarks/run.py [--quick]"""
import sys

from efsfast.bench import main

sys.exit(main(sys.argv[1:]))
