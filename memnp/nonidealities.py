"""Public home of the nonideality classes (implemented in :mod:`memnp.crossbar.nonidealities`)."""
from .crossbar.nonidealities import *  # noqa: F401,F403
from .crossbar.nonidealities import __all__  # noqa: F401
