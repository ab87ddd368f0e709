"""The pure core: domain values, code tables, texts, reading parser, rules, fill cycle; no I/O."""
