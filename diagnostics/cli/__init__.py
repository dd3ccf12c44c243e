"""The command line: ``python -m diagnostics stats|datasets|compare|runs|report``."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
