"""Errors of the local stack."""


class StackError(RuntimeError):
    """The stack cannot do what was asked; the message says why and what to do."""
