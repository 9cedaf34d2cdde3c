"""`medstream top`: a terminal view of the worker's /metrics."""
