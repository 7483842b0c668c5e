"""The image tools (image/*.py) are scripts, not a package: put their folder on the path."""

from __future__ import annotations

import sys
from pathlib import Path

IMAGE_DIR = Path(__file__).resolve().parents[2] / "image"
if str(IMAGE_DIR) not in sys.path:
    sys.path.insert(0, str(IMAGE_DIR))
