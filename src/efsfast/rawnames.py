"""Names and sizes of the raw stream that modules share without loading
``raw.py`` (whose dataclasses and helpers cost ~5 ms at start-up, which
``efsfast decrypt`` of one stream never needs).  ``raw`` exports them too."""

READ_CHUNK = 1 << 20                # bytes per read of a raw stream
UNNAMED_STREAM = "::$DATA"          # the name of a file's unnamed data stream
DEFAULT_PROVIDER = "Microsoft Enhanced Cryptographic Provider v1.0"
