"""`python -m station` is the `station` command."""

from station.app.cli import main

main()
