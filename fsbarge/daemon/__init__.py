"""The daemon: the Event Socket client, the loop of each node, the journal and what ships it to the
database, webhooks, ownership of nodes, and the composition root (fsbarge.daemon.root)."""
