"""Developer and operator tools beside the runtime: local stack, demo, top, bench, soak.

Nothing in `worker/` imports this package; the `medstream` command registers these tools
only where their extras are installed.
"""
