"""The one exception type that reaches users as a message instead of a traceback."""


class KeelError(Exception):
    """A problem with the user's input or environment; its text says what was wrong and how to fix it."""
