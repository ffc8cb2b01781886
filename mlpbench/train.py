"""`python -m mlpbench.train`: the training CLI (mlpbench.lecture.train)."""

import sys

from .lecture.train import main

if __name__ == "__main__":
    sys.exit(main())
