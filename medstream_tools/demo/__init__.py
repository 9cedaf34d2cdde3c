"""`medstream demo`: the whole pipeline end to end on the local stack."""
