"""`python -m station` is the `station` command."""

from .cli import main

main()
