"""Files that survive faults and untrusted input: ``atomic.py`` (small files written whole or not at all) and
``safe_load.py`` (Paddle weight pickles read as data, never as code). Below every other package but ``errors``,
so the engine, tracking, weights and export all use the same two recipes."""
