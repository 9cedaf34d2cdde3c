"""`make soak` and what it shares with the chaos suite (tests/chaos/): a steady load of real
inputs, the end-of-run accounting (every input answered), and a `medstream worker` subprocess.

    python -m medstream_tools.soak --minutes 10
"""
