"""``python -m realsr.cli`` (used with torchrun for distributed training)."""

import sys

from .main import main

sys.exit(main())
