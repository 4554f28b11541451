"""``python -m trainer --images DIR --out runs/NAME [...]``; see ``trainer.train``."""

import sys

from .train import main

sys.exit(main())
