"""`python -m dfake_cli` (also what `torchrun -m dfake_cli train ...` runs)."""

from dfake_cli.cli.main import main

if __name__ == "__main__":
    main()
