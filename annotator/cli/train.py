"""Placeholder: replaced by the issue that builds this command."""


def train_command() -> None:
    """Not built yet."""
    raise NotImplementedError
