"""The ``aiinfra`` command line: one command over the serving, bench, infra and policies
packages (``aiinfra.cli``)."""
