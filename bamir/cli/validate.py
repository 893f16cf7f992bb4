"""``bamir-validate PATH``: check a raw dataset folder; print the report, exit 1 on errors.

Plain argparse (no Hydra): ``bamir-validate PATH [--no-images] [--tolerate CODE] [--json]``.
"""

from __future__ import annotations

import sys

from bamir.data.validate import main

if __name__ == "__main__":
    sys.exit(main())
