"""Placeholder: replaced by the issue that builds this command."""


def import_command() -> None:
    """Not built yet."""
    raise NotImplementedError
