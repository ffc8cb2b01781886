"""`python -m mlpbench.experiments`: the lecture's studies (mlpbench.lecture.experiments)."""

import sys

from .lecture.experiments import main

if __name__ == "__main__":
    sys.exit(main())
