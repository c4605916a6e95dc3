"""The ``pyimgcls`` command line (entry point ``pyimgcls.cli.main:main``)."""
