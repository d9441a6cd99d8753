import sys
from pathlib import Path

# importlib mode: make the package's test helpers (nar_helpers.py) importable
sys.path.insert(0, str(Path(__file__).resolve().parent))
