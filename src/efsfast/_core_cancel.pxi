# Included by _core.pyx: stopping a running call, from a CancelToken or Ctrl-C.

cdef class CancelToken:
    """A flag the trampolines check on every callback: ``cancel()`` stops a
    running restore or backup within one system buffer (the flag is
    declared in _core.pxd)."""

    def cancel(self):
        self.flag = 1

    @property
    def cancelled(self):
        return bool(self.flag)

    def reset(self):
        self.flag = 0


cdef int *cancel_ptr(CancelToken token):
    return &token.flag if token is not None else NULL


cdef inline bint cancelled(int *flag, unsigned sigint_base) noexcept nogil:
    return (flag != NULL and flag[0]) or efs_sigint_count() != sigint_base


def watch_sigint():
    """Chain efsfast's SIGINT counter in front of Python's handler, so Ctrl-C
    reaches restores that run without the GIL (call from the main thread)."""
    if efs_sigint_install() != 0:
        raise OSError("cannot install the SIGINT handler")

