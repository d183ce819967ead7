"""One update run as steps: check -> plan -> fetch -> verify -> install -> restart ->
record."""
