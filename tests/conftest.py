from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import redis.asyncio as aioredis

from tests.support.redis_server import RedisServer

if TYPE_CHECKING:
    from service.modelserver.engine import SpeechEngine
    from service.modelserver.server import LocalRealtimeServer
    from service.peers.gemini_live import LocalGeminiServer
    from service.serving import RunningService
    from tests.support.session_driver import SessionDriver

TEST_AUTH_TOKEN = "test-auth-token-0123456789abcdef"
E2E = Path(__file__).parent / "e2e"
# Fixtures that mean real sockets (a Redis server, the service, a local peer).
NETWORK_FIXTURES = frozenset(
    {"redis_server", "own_redis_server", "redis_client", "make_service", "local_model"}
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``e2e``: whole-service tests under tests/e2e/; ``network``: anything on real sockets.
    ``make unit`` runs the rest: the socket-free suite."""
    for item in items:
        if E2E in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.network)
        elif NETWORK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.network)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real Redis for the whole test session (flushed before each test that uses it)."""
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A private real Redis that the test may stop and restart."""
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
async def make_service(
    redis_server: RedisServer,
) -> AsyncIterator[Callable[..., Awaitable[RunningService]]]:
    """Start the real app under uvicorn on 127.0.0.1 (a free port), against a real Redis."""
    from service.serving import RunningService, free_port
    from service.settings import Settings

    started: list[RunningService] = []
    flush = aioredis.Redis.from_url(redis_server.url)
    await flush.flushall()
    await flush.aclose()

    async def start(**overrides: object) -> RunningService:
        port = free_port()
        values: dict[str, object] = {
            "public_url": f"http://127.0.0.1:{port}",
            "redis_url": redis_server.url,
            "twilio_auth_token": TEST_AUTH_TOKEN,
            "redis_key_prefix": "test:",
            "call_ttl_seconds": 600,
            "realtime_backend": "none",
        }
        values.update(overrides)
        service = RunningService(Settings(**values), port)  # type: ignore[arg-type]
        await service.__aenter__()
        started.append(service)
        return service

    yield start
    for service in reversed(started):
        await service.__aexit__(None, None, None)


@pytest.fixture
async def local_model() -> AsyncIterator[Callable[..., Awaitable[LocalRealtimeServer]]]:
    """Start the local OpenAI-Realtime server; every client event it receives during the
    test is checked against the ``openai`` SDK's GA types (strictly) at teardown."""
    import dataclasses

    from service.modelserver.script import Script
    from service.modelserver.server import LocalRealtimeServer
    from tests.support.conformance import check_openai_client_event

    received: list[dict] = []
    servers: list[LocalRealtimeServer] = []

    async def start(
        script: Script | None = None, *, engine: SpeechEngine | None = None
    ) -> LocalRealtimeServer:
        script = dataclasses.replace(
            script or Script(), on_client_event=lambda _sid, event: received.append(event)
        )
        server = LocalRealtimeServer(script, engine=engine)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()
    for event in received:
        check_openai_client_event(event)


@pytest.fixture
def d() -> Iterator[SessionDriver]:
    """A sans-I/O local Realtime session on a simulated clock (tests/support/local_session.py)."""
    from tests.support.session_driver import SessionDriver

    yield SessionDriver()


@pytest.fixture
async def gemini_peer() -> AsyncIterator[Callable[..., Awaitable[LocalGeminiServer]]]:
    """Start local Gemini Live peers: ``await gemini_peer(script)`` or
    ``await gemini_peer(pace=None, …)`` (GeminiScript fields); all stopped after the test."""
    from service.peers.gemini_live import GeminiScript, LocalGeminiServer

    servers: list[LocalGeminiServer] = []

    async def start(script: GeminiScript | None = None, **fields: object) -> LocalGeminiServer:
        server = LocalGeminiServer(script or GeminiScript(**fields))  # type: ignore[arg-type]
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()
