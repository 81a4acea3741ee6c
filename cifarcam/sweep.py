"""`python -m cifarcam.sweep`, the same as `cifarcam sweep` (the code: cifarcam.scale.sweep)."""

import sys

from cifarcam.cli import main

if __name__ == "__main__":
    main(["sweep", *sys.argv[1:]])
