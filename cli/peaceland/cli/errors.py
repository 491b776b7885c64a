"""Errors of the command line, and every error of the components it composes that a user
can act on (each component keeps its own in its ``errors`` module)."""

from typing import Final

from peaceland.loadgen.errors import LoadError
from peaceland.node.errors import NodeError
from peaceland.stack.errors import StackError


class CommandError(RuntimeError):
    """A command failed for a reason the user can act on; the message says which."""


#: What a command reports as "error: <message>" and exit status 1, never as a traceback.
USER_ERRORS: Final = (CommandError, StackError, NodeError, LoadError)
