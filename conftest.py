"""Root conftest: registers the fixture modules of tests/support as plugins."""

pytest_plugins = [
    "tests.support.pg",
    "tests.support.autree",
    "tests.support.servers",
    "tests.support.chain",
    "tests.support.proxy",
    "tests.support.squid",
    "tests.support.drip",
    "tests.support.gateway",
    "tests.support.daemon",
    "tests.support.browser",
    "tests.support.smtp",
    "tests.support.snmp",
]
