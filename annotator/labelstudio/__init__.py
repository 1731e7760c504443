"""Label Studio round trip (SPEC §7): a local server (server), the connection (client), the labelling config and
its payloads (config), pushing pairs as tasks (push) and pulling verdicts back as reviews (pull)."""
