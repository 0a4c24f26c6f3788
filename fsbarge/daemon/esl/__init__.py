"""fsbarge's own Event Socket client, by role: connection (the socket, ``auth``, replies matched to
commands), session (commands under timeouts) and link (a node kept connected, with one backoff)."""
