"""The ``vgz`` command-line interface (``vgz --help``)."""
