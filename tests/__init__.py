"""The test suite; a package so that `tests.support` (shared helpers and fixtures) imports."""
