"""The local store on SQLite, the one owner of SQL: records, chain, outbox, stats, retention, backup."""
