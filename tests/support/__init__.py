"""Shared test support: ports, the session stack fixtures, the worker harness, inputs/outputs.

The fixture modules are loaded as pytest plugins by tests/conftest.py (`pytest_plugins`);
helpers are imported from here (`from tests.support.harness import Topics`). The worker
subprocess, polling, steady load and accounting live in medstream_tools.soak (the soak uses them).
"""
