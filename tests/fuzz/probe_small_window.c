/*
 * efs_probe.c again, with a 29-byte window instead of 4 KiB, for
 * fuzz_probe.c: on the fuzzer's inputs few headers cross a 4 KiB edge, with
 * 29 bytes most do (a 12-byte peek, a name read at +28), so the window's
 * edge cases are met on almost every input.  The walk's code is the same.
 */
#define PROBE_WINDOW 29u
#define efs_probe_unnamed_fd efs_probe_unnamed_fd_small_window
#define efs_probe_unnamed_path efs_probe_unnamed_path_small_window
#include "efs_probe.c"
