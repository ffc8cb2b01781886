"""`python -m mlpbench.report`: the benchmark report (mlpbench.perf.report)."""

import sys

from .perf.report import main

if __name__ == "__main__":
    sys.exit(main())
