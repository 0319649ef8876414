"""`python -m gpt ...`: the same as the `gpt` console script (see gpt.cli)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
