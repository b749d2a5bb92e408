"""Programs that talk to a relay from outside: ``relay upload`` (tus)."""
