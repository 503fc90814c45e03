"""``python -m vision_backbones.cli``: the ``backbones`` command without the installed script."""

import sys

from vision_backbones.cli import main

sys.exit(main())
