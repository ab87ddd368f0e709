"""The city side: the traceability system's client and wire, lookups, the outbox's sync, the clock."""
