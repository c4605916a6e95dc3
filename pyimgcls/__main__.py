"""``python -m pyimgcls ...``: the same as the ``pyimgcls`` command."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
