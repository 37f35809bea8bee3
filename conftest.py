"""The repository's test suites opt in to the testing kit's loopback server and ``isolated``
marker (other projects that install lightmem-core do not get them unless they ask)."""

pytest_plugins = ["lightmem_core.testing.loopback", "lightmem_core.testing.isolation"]
