"""``python -m memnp [COMMAND] [OPTIONS]`` and the ``memnp`` console script: memnp's command line
from an installed package (``run.py`` does the same in a source checkout).

BLAS is limited to one thread unless OPENBLAS_NUM_THREADS (MKL_NUM_THREADS) is set, as run.py
does; this works because ``import memnp`` loads no numpy and the CLI is imported only below.
"""
import os
import sys

for _name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

from memnp.cli import main as _cli_main  # noqa: E402  (after the thread settings, before numpy loads)


def main(argv=None):
    """The console script's entry point (setup.cfg: ``memnp = memnp.__main__:main``)."""
    name = "python -m memnp" if sys.argv and sys.argv[0].endswith("__main__.py") else "memnp"
    return _cli_main(argv, prog_name=name)


if __name__ == "__main__":
    main()
