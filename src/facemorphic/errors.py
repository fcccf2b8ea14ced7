"""Exceptions shared by every stage."""


class FacemorphicError(Exception):
    """An error caused by the user's input (a bad file, a wrong value).

    The CLI reports it as one line without a traceback; the message always names the file or the
    config key and says what is wrong.
    """


class InputFileError(FacemorphicError):
    """A file that cannot be used; ``path`` names it and ``reason`` says why."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
