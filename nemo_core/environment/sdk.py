"""Importing the OpenReward SDK's server side quickly, in the process that serves.

`import openreward.environments` first runs the package's `__init__`, which imports the whole client
(rollout serializers for OpenAI, Anthropic and Google, sandboxes, judging): 3 s and 85 MB on these machines,
none of it used by a server. `load_server_sdk` registers the package without running its `__init__`, then
imports `openreward.environments` (the SDK's server, environment and types modules, unchanged), about a
second. If that ever fails (a future SDK importing something from the package root), it imports the package
the ordinary way. Only `serve-env` calls this, in its own process; everything else imports normally.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types

from ..base.errors import NemoError

ENV_DEFAULTS = {
    "OPENREWARD_DISABLE_UPDATE_CHECK": "1",  # no call to the package index from a server (or a test)
}


class SDKMissing(NemoError):
    """The `openreward` package is not installed."""

    hint = "install it: .venv/bin/python -m pip install -r requirements-env.txt"


def set_sdk_environment(log_level: str | None = None) -> None:
    """Environment variables the SDK reads when its modules are imported: no update check, and the log level
    of its loggers (`OPENREWARD_LOG_LEVEL`; each request is logged at INFO)."""
    os.environ.update(ENV_DEFAULTS)
    if log_level:
        os.environ["OPENREWARD_LOG_LEVEL"] = log_level.upper()


def load_server_sdk() -> types.ModuleType:
    """`openreward.environments`, imported without the package `__init__` when possible."""
    if "openreward.environments" in sys.modules:
        return sys.modules["openreward.environments"]
    spec = importlib.util.find_spec("openreward")
    if spec is None or not spec.submodule_search_locations:
        raise SDKMissing("serve-env needs the OpenReward SDK (the openreward package), which is not installed")
    if "openreward" not in sys.modules:
        package = types.ModuleType("openreward")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        package.__file__ = spec.origin
        package.__package__ = "openreward"
        sys.modules["openreward"] = package
    try:
        return importlib.import_module("openreward.environments")
    except ImportError:
        for name in [n for n in sys.modules if n == "openreward" or n.startswith("openreward.")]:
            del sys.modules[name]
        return importlib.import_module("openreward.environments")
