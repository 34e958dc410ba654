"""nbchat's version, importable by every layer without importing the package's front."""

__version__ = "0.1.0"
