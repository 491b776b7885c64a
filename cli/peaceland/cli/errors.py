"""Errors of the command line (the stack's live in ``peaceland.stack.errors``)."""


class CommandError(RuntimeError):
    """A command failed for a reason the user can act on; the message says which."""
