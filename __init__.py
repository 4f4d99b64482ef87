"""revprompt: propose the prompts that most plausibly produced a text."""

__version__ = "0.1.0"
