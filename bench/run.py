"""Run elman's benchmark suite from a checkout: the same as ``python -m elman bench``.

    python bench/run.py [--quick | --smoke] [--threads N] [--out PATH] [--plot PATH] [--json [PATH]]

The code lives in the package (elman.benchmarks, elman.bench_cli) so that installed users, who
have no bench/ folder, can run it too. See bench/README.md.
"""

import sys

from elman.bench_cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
