"""Placeholder: replaced by the issue that builds this command."""


def export_command() -> None:
    """Not built yet."""
    raise NotImplementedError
