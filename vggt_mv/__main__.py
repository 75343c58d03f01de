"""Run the command-line interface: `python -m vggt_mv inspect ...`."""

import sys

from vggt_mv.cli import main

sys.exit(main())
