"""memnp's command line: ``python run.py`` (the default preset of ``reproduce``) or
``python run.py COMMAND --help``. Everything is in memnp.cli."""
from memnp.cli import main

if __name__ == "__main__":
    main()
