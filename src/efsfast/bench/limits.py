"""What limits each benchmark target that a run misses, by target name, as
measured (the profile behind each statement is in benchmarks/README.md,
"Where the time goes"); results.md quotes it under a missed target."""

LIMITS = {
    "C trampoline vs memcpy ceiling, 4096 B":
        "per system buffer the POSIX side also fills and checks the 16-byte guard, feeds the "
        "streaming validator and makes two indirect calls: about 30 ns per call, which a 4 KiB "
        "memcpy (~260 ns from DRAM) does not hide; from 64 KiB up it disappears",
    "restore_many 2 workers vs 1":
        "each 16 KiB file costs ~9 us of kernel work (tmpfs page allocation and copy: 54% of "
        "samples in copy_folio_from_iter_atomic) plus directory updates that serialise on the "
        "directory lock; on 2 shared cores the kernel, not efsfast, sets the ceiling",
    "streaming validation cost":
        "'validation off' stores the incoming bytes verbatim without parsing at all, so the "
        "difference also holds what any correct restore must do: cut the 512-byte segment "
        "headers out, so each 1 MiB window goes out as a writev of about 17 slices (one per "
        "segment) where the verbatim copy writes one; parsing and checks cost user time",
    "end-to-end restore vs cp":
        "cp copies inside the kernel (copy_file_range); a restore must pread the stream into the "
        "system buffer and write the ciphertext out of it, one more pass over memory; on the "
        "shared disk the spread between runs is larger than the gap",
    "C trampoline vs memcpy ceiling, 65536 B":
        "not a change of the path: callgrind counts the same 3.62 M instructions per MiB as the "
        "quiet run of 2026-11-24 (1.01x there); this run's spreads are 16-94% with the machine "
        "loaded (see the load average above)",
    "C trampoline vs memcpy ceiling, 66048 B":
        "as for 65536 B: the same instruction count as the quiet run (1.02x there); the spread "
        "of this run is larger than the gap",
    "restore_many never slower with more workers, tmpfs 16 KiB":
        "on 2 CPUs the C ceiling itself falls from 1 to 2 threads (38.2k -> 26.1k files/s in "
        "the run of 2026-11-25 20:07; restore_many 32.2k -> 24.2k): tmpfs's per-file kernel "
        "work (page allocation, the one directory's lock) shared by 2 cores; past 2 workers "
        "only queue. Scaling to 16 needs a 16-core machine, which this session was not lent",
    "restore_many never slower with more workers, tmpfs 1024 KiB":
        "as for 16 KiB: restore_many's 2-to-4 drop (1,470 -> 1,291 files/s) is past the 2 "
        "CPUs, where the ceiling stays flat only because it copies nothing through a buffer",
    "restore_many never slower with more workers, disk 16 KiB":
        "the ceiling falls the same way on the shared ext4 disk (20.5k -> 15.9k files/s from "
        "1 to 2 threads; 13.0k at 8)",
    "restore_many never slower with more workers, disk 1024 KiB":
        "as for 16 KiB on the disk",
    "restore_many vs C ceiling, worst of 1–16 workers, tmpfs 16 KiB":
        "its worst point is 1 worker, where nothing overlaps: each item also walks and "
        "validates its raw stream and passes through the 64 KiB system buffer (the "
        "WriteEncryptedFileRaw contract) where the ceiling writes the file from one buffer: "
        "30.3 us against 20.5 us per file in the run of 2026-12-06 21:35 (the ceiling's own "
        "spread 60%); from 2 workers on 0.85-0.95x",
    "restore_many vs C ceiling, worst of 1–16 workers, disk 1024 KiB":
        "the ceiling writes each file from one buffer; a restore copies it through the 64 KiB "
        "system buffer first (the WriteEncryptedFileRaw contract), one more pass over memory "
        "that a disk-bound run does not hide at 1 MiB per file",
    "ntfs-3g restore-tree (default workers) vs tar -x":
        "efsfast sends the daemon fewer requests per file than tar (11 against 15.8, counted "
        "at the daemon, its durability one FSYNCDIR after the last file: ntfs-3g flushes "
        "its whole device at any fsync) and costs it less CPU (the floor above), though its "
        "no-replace publication is three directory-index changes on NTFS (CREATE of a "
        "temporary, LINK, UNLINK) where tar makes one (MKNOD); what is left is the latency "
        "of each round trip to a daemon that serves one request at a time, which a second "
        "worker barely overlaps, and efsfast's start-up (interpreter and imports, ~0.1 s of "
        "a 0.6 s job)",
    "ntfs-3g restore-tree --workers 1 vs tar -x":
        "as with default workers: the daemon's time plus start-up leave little room (the "
        "floor above)",
    "ntfs-3g restore-tree: the default worker count is the fastest":
        "the differences between 1, 2 and 4 workers are within the spread: the daemon serves "
        "one request at a time, so the count hardly matters on ntfs-3g",
    "ntfs-3g backup-tree vs tar -c":
        "8 FUSE requests per object, as tar, but 3 of them read the NTFS metadata tar does "
        "not capture (system.ntfs_attrib, _times, _acl) and take the daemon's time; the "
        "objects run in C (efs_posix_backup.c) but each manifest line is made in Python, and "
        "start-up (~0.1 s) is a large part of a job tar finishes in ~0.2 s",
    "ntfs-3g large-file restore vs cp":
        "efsfast writes the temporary with O_DIRECT on ntfs-3g, a window of 1 MiB per write(): "
        "for 256 MiB 2,323 WRITE requests of up to 128 KiB and 262 GETXATTR, where cp's "
        "buffered writes make 65,537 WRITE requests of 4 KiB and 2,049 GETXATTR; what is "
        "left is efsfast's start-up and the machine's load",
    "ntfs-3g FUSE requests per file, tar -c / efsfast backup-tree":
        "GETXATTR 4 per object against tar's 1: the NTFS metadata (attributes, times, "
        "descriptor) that tar does not capture; with --no-metadata efsfast makes 5",
    "10,000 small files vs Python loop":
        "the Python loop runs on efsfast's own C system side too, so both pay the same kernel "
        "cost per file (~9 us of the ~17 us efsfast needs on one worker); only the ~6 us of "
        "Python per file can be won",
}


