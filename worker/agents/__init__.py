"""Faust agents, one per event kind, on the shared at-least-once batch loop."""
