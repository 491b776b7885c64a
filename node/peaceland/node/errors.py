"""Errors of the local node."""


class NodeError(RuntimeError):
    """A local process or the local platform failed; the message names its log."""
