"""The launcher for pip-only users: ``python -m hpxpy.run -l 4 script.py``
runs ``script.py`` as 4 localities, exactly as ``hpxrun -l 4 python3
script.py`` does (the same options; a command ending in ``.py`` runs under
this interpreter)."""

import signal
import sys


def main(argv=None):
    """Runs hpxrun with ``argv`` (default: this process's arguments) and
    returns the job's exit code."""
    from . import _core

    args = list(sys.argv[1:] if argv is None else argv)
    # Ctrl-C stops the job (the launcher handles it, in order); it must not
    # also raise KeyboardInterrupt here once the job has ended.
    previous = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        return _core._launch(args, sys.executable)
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
