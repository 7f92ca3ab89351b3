"""The collector's error types: one per failure family, each with a message a person can act on."""


class BundleError(ValueError):
    """The bundle (or a bare log) cannot be read at all: missing, empty, not ours, wrong version."""
