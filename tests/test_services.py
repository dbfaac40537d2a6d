"""What a process refuses to start with: a backend some profile uses lacks its credentials."""

from __future__ import annotations

import os
import subprocess
import sys

from service.services import configuration_problem
from service.settings import Settings


def test_each_cloud_backend_names_what_it_lacks() -> None:
    assert configuration_problem(Settings(realtime_backend="local")) is None
    assert configuration_problem(Settings(realtime_backend="none")) is None
    assert configuration_problem(Settings(realtime_backend="openai")) == (
        "REALTIME_BACKEND 'openai' needs OPENAI_API_KEY, which is not set"
    )
    azure = configuration_problem(
        Settings(realtime_backend="azure", azure_openai_endpoint="https://x.example")
    )
    assert azure is not None
    assert "AZURE_OPENAI_API_KEY, AZURE_OPENAI_DEPLOYMENT" in azure
    ok = Settings(realtime_backend="gemini", gemini_api_key="k")  # type: ignore[arg-type]
    assert configuration_problem(ok) is None


def test_a_missing_profiles_file_is_a_configuration_problem() -> None:
    problem = configuration_problem(Settings(agent_profiles="/nonexistent/profiles.toml"))
    assert problem is not None and "not found" in problem


def test_serve_fails_at_start_with_one_clear_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REALTIME_"))}
    env["REALTIME_BACKEND"] = "openai"
    done = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--port", "9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "cannot start: REALTIME_BACKEND 'openai' needs OPENAI_API_KEY, which is not set"
    )
