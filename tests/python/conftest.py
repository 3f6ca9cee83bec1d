"""pytest fixtures and hooks for the black-box client tests; see harness.py for the
`Broker` class and the client helpers.

* `broker`: one broker per test module (a module may set BROKER_OVERRIDES = {...}).
* `fresh_broker`: one broker per test. `make_broker(overrides)`: factory, per test.
* `admin`: confluent-kafka AdminClient on `broker`. `topic`: a unique topic name.
* On a failure the tail of every involved broker's log is added to the report.
"""

from __future__ import annotations

import pytest

from harness import Broker, unique_topic

# ---------------------------------------------------------------------- failure reports
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        brokers = [v for v in getattr(item, "funcargs", {}).values() if isinstance(v, Broker)]
        brokers += getattr(item, "_troupe_brokers", [])
        seen = set()
        for b in brokers:
            if id(b) in seen:
                continue
            seen.add(id(b))
            report.sections.append((f"troupe broker log ({b.bootstrap})", b.log_tail()))


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def broker(request):
    """One broker for the whole module; BROKER_OVERRIDES in the module adds settings."""
    overrides = getattr(request.module, "BROKER_OVERRIDES", {})
    b = Broker(overrides, name=request.module.__name__).start()
    yield b
    b.close()


@pytest.fixture
def make_broker(request):
    """Factory: make_broker({'key': 'value'}) -> a started Broker, closed after the test."""
    made: list[Broker] = []
    request.node._troupe_brokers = made

    def factory(overrides: dict[str, str] | None = None, start: bool = True) -> Broker:
        b = Broker(overrides, name=request.node.name[:40])
        made.append(b)
        return b.start() if start else b

    yield factory
    errors = []
    for b in made:
        try:
            b.close()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture
def fresh_broker(make_broker):
    return make_broker()


@pytest.fixture
def admin(broker):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": broker.bootstrap, "socket.timeout.ms": 10000})


@pytest.fixture
def topic(request):
    return unique_topic(request.node.name)


