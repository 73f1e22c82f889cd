# Fixtures that start real servers (daphne, runserver, redis-server) on loopback.
pytest_plugins = ["tests.live"]
