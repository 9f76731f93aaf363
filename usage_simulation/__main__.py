"""`python -m usage_simulation`: see usage_simulation.cli."""

import sys

from usage_simulation.cli import main

if __name__ == "__main__":
    sys.exit(main())
