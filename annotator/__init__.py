"""annotator: build and train on an ADVANCE-style audiovisual aerial-scene dataset."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("annotator")  # one source of truth: pyproject.toml
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
