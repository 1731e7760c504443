"""Placeholder: replaced by the issue that builds this command."""


def status_command() -> None:
    """Not built yet."""
    raise NotImplementedError
