"""``python -m sigreg_core``: the ``sigreg`` command line (see :mod:`sigreg_core.cli`)."""
from sigreg_core.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
