"""Versioned schema migrations, one folder per dialect, applied in file-name order."""
