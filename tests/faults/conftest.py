"""The fault campaign's helpers live beside its tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
