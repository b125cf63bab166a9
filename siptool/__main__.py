"""`python -m siptool` runs the CLI."""

from .cli import main

main()
