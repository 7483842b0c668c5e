"""``python -m aiinfra``: the same command as the ``aiinfra`` console script."""

from aiinfra.cli import main

main()
