"""memnp's command line (click). ``run.py`` calls :func:`main`; ``import memnp`` never imports this
package, and it imports matplotlib only when figures are drawn.

group.py holds the click group, ``reproduce``, ``report``, ``figures``, ``bench`` and the entry point;
jobs.py ``train`` and ``infer``; devices.py ``fit-device``; common.py the helpers they share.
"""
from .group import arguments, cli, main

__all__ = ["arguments", "cli", "main"]
