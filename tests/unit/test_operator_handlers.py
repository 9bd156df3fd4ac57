"""Handlers land on the registry they are given; importing the operator registers nothing."""

from __future__ import annotations

import importlib

import kopf

from inshape_operator import handlers


def test_importing_registers_nothing_on_kopfs_default_registry() -> None:
    default = kopf.get_default_registry()
    before = len(default._changing.get_all_handlers()) + len(default._spawning.get_all_handlers())
    importlib.reload(handlers)
    after = len(default._changing.get_all_handlers()) + len(default._spawning.get_all_handlers())
    assert after == before


def test_register_puts_every_handler_on_the_given_registry() -> None:
    registry = kopf.OperatorRegistry()
    handlers.register(registry)
    activities = {h.id for h in registry._activities.get_all_handlers()}
    assert {"login", "startup", "cleanup"} <= {a.rsplit(".", 1)[-1] for a in activities}
    changing = {h.id.rsplit(".", 1)[-1] for h in registry._changing.get_all_handlers()}
    assert {"changed", "deleted"} <= changing
    daemons = [h.id.rsplit(".", 1)[-1] for h in registry._spawning.get_all_handlers()]
    assert daemons == ["clock"]  # one per policy: its passes between events
    watching = {h.id.rsplit(".", 1)[-1] for h in registry._watching.get_all_handlers()}
    assert watching == {"rollback", "job_changed"}
