"""Entry points: the `station` command, the daemon, doctor, tag binding and the demo."""
