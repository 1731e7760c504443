"""Placeholder: replaced by the issue that builds this command."""


def demo_command() -> None:
    """Not built yet."""
    raise NotImplementedError
