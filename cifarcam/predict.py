"""`python -m cifarcam.predict`, the same as `cifarcam predict` (the code: cifarcam.explain.predict)."""

import sys

from cifarcam.cli import main

if __name__ == "__main__":
    main(["predict", *sys.argv[1:]])
