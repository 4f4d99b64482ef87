"""Errors meant for the person at the terminal: the CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """Bad input or environment the user can fix. `exit_code` 2 for bad input, 1 otherwise."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a batch: the run it stopped (marked 'interrupted'; re-running the command resumes it).
    A KeyboardInterrupt still, so whatever catches Ctrl-C catches this."""

    def __init__(self, run_id: str | None = None):
        super().__init__(run_id)
        self.run_id = run_id
