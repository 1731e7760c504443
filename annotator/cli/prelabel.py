"""Placeholder: replaced by the issue that builds this command."""


def prelabel_command() -> None:
    """Not built yet."""
    raise NotImplementedError
