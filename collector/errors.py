"""The collector's error types: one per failure family, each with a message a person can act on."""


class BundleError(ValueError):
    """The bundle (or a bare log) cannot be read at all: missing, empty, not ours, wrong version."""


class CannotWrite(OSError):
    """The output cannot be written where it was asked for: reports, an unpacked tarball,
    verify.json or the history page (exit CANNOT_WRITE, whichever command)."""
