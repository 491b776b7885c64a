"""Errors of the load generator."""


class LoadError(RuntimeError):
    """A run could not be driven or checked; the message says why and what to look at."""
