"""The steps of a reconcile, one module each: every step makes one part of a force match its
spec and returns the :class:`~peaceland.operator.results.Step` that sets its condition.

A step never raises for a server that does not answer: it says so in its result (``retry``),
so the other steps still run and the status says everything that is wrong at once.
"""
