"""The ``peaceland`` command line: the local stack, the demo and the benchmarks.

This is the one component allowed to import the others: it composes them into commands.
"""
