"""`python -m annotator` (also what `torchrun -m annotator train ...` runs)."""

from annotator.cli import main

if __name__ == "__main__":
    main()
