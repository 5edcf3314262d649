"""The exceptions HPXPy raises. Every one is an :class:`HPXError`; those
caused by bad arguments are also the matching built-in exception, so that
``except ValueError`` and ``except IndexError`` work as with NumPy."""


class HPXError(RuntimeError):
    """An error of the hpx runtime; the message is the runtime's."""


class LocalityLostError(HPXError):
    """A locality of the job died or stopped answering."""


class JobAbortedError(HPXError):
    """The job was stopped: another locality failed, or it was interrupted."""


class CollectiveMismatchError(HPXError):
    """Localities made different collective calls at the same point."""


class HPXValueError(HPXError, ValueError):
    """A bad argument: mismatched shapes or layouts, an unknown operation."""


class HPXIndexError(HPXError, IndexError):
    """An index out of range."""


class LocalityIndexError(HPXError, IndexError):
    """A locality number (a root, a placement) that is not in the job."""


class DTypeError(HPXError, TypeError):
    """An element type that hpxpy arrays do not hold, or that an operation
    does not take."""


__all__ = [
    "HPXError",
    "LocalityLostError",
    "JobAbortedError",
    "CollectiveMismatchError",
    "HPXValueError",
    "HPXIndexError",
    "LocalityIndexError",
    "DTypeError",
]
