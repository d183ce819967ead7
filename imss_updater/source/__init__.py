"""Where components come from and how we know they are genuine: HTTP, server.ini,
signatures, connection probes."""
