"""annotator: build and train on an ADVANCE-style audiovisual aerial-scene dataset."""

__version__ = "0.1.0"
