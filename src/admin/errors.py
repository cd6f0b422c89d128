"""The error that admin commands raise for a problem the operator can fix."""


class AdminError(Exception):
    """A failed command; the message is shown as is and the exit status is 1."""
