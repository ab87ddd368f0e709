"""One rig's loop: the controller link, the permit, readings, decisions and the fill ledger."""
