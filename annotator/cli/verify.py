"""Placeholder: replaced by the issue that builds this command."""


def verify_command() -> None:
    """Not built yet."""
    raise NotImplementedError
