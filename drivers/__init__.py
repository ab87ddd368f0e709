"""Device drivers: one interface per device kind, implementations beside it."""
