"""The suite's shared fixtures, loaded as plugins from tests/support/ (pytest only honours
`pytest_plugins` in the rootdir conftest): the local stack, its Settings and topic_factory;
the producer tests' receiver subprocesses and own broker."""

pytest_plugins = ["tests.support.stack", "tests.support.producers"]
