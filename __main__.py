from .core.cli import entry

entry()
