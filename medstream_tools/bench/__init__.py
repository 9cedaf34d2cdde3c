"""`medstream bench`: throughput and latency of medstream against its ceiling and a naive baseline.

Everything is measured in one run on the same machine, so ratios are comparable even where
absolute figures drift (shared, noisy CPUs).
"""
