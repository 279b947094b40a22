"""efsfast's benchmarks (``efsfast bench``, or ``python benchmarks/run.py``):
ratios measured side by side in one run against a ceiling and against what
users would otherwise pick, best of N with the spread and the load each
series ran under.  Nothing here asserts a timing.  Not part of the API:
nothing in efsfast imports this package.

One module per concern: ``timing`` (inputs, the clock, the load),
``core`` (the import path, end to end, small files, instruction counts),
``bulk`` (restore_many and restore-tree against the C ceiling),
``ntfs3g`` (a real ntfs-3g volume against tar and cp), ``serial`` (the
serial cost per item and Amdahl's bound), ``report`` and ``limits``
(results.md), ``run`` (the command).
"""
