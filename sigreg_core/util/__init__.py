"""Small shared helpers: the one cache directory (:mod:`.cache`) and JSON-safe conversion (:mod:`.jsonsafe`)."""
