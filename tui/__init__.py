"""The Textual TUI over a results database: `revprompt tui [DB]` (see revprompt.tui.app)."""
