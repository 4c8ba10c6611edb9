"""``python -m hwnas``: the same command line as ``hwnas``."""

from hwnas.cli import main

main()
