"""The station's web pages (`station web`): operator screens and the managers' pages.

A separate process that reads the store and never imports a device driver: a crash of, or an
attack on, the web pages cannot open a valve. Its only writes are the managers' own (an overfill
marked handled, the block list, a dead letter sent again), through station.store.Store.
"""
