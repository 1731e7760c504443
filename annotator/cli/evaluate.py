"""Placeholder: replaced by the issue that builds this command."""


def evaluate_command() -> None:
    """Not built yet."""
    raise NotImplementedError
