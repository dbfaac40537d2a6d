"""``python -m service …``: serve, call (the softphone), demo (the README's main job)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from service.logging import configure_logging
from service.settings import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default PORT).")] = None,
) -> None:
    """Run the service (uvicorn)."""
    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    from service.services import configuration_problem
    from service.serving import DrainingServer, uvicorn_config

    if (problem := configuration_problem(settings)) is not None:
        typer.echo(f"cannot start: {problem}", err=True)
        raise typer.Exit(2)

    config = uvicorn_config(settings, host=host or settings.host, port=port or settings.port)
    DrainingServer(config, drain_timeout=settings.drain_timeout_seconds).run()


@app.command()
def call(
    base_url: Annotated[str, typer.Argument(help="Service base URL, e.g. http://127.0.0.1:8080")],
    wav: Annotated[Path | None, typer.Option(help="WAV file the caller speaks.")] = None,
    record: Annotated[Path | None, typer.Option(help="Write what the caller hears here.")] = None,
    seconds: Annotated[float, typer.Option(help="Call length in seconds.")] = 5.0,
    dtmf: Annotated[str, typer.Option(help="Digits to press, e.g. '1234#'.")] = "",
    from_: Annotated[str, typer.Option("--from", help="Caller number.")] = "+15550100001",
    to: Annotated[str, typer.Option(help="Dialed number.")] = "+15550100002",
    public_url: Annotated[
        str | None, typer.Option(help="URL the service believes is public (signing).")
    ] = None,
) -> None:
    """Place one call as Twilio would (webhook, signed stream, real-time audio)."""
    from service.peers.twilio.client import place_call

    settings = Settings()
    configure_logging(settings.log_format, "warning")
    summary = asyncio.run(
        place_call(
            base_url,
            auth_token=settings.twilio_auth_token.get_secret_value() or None,
            public_url=public_url or settings.public_url,
            audio=wav,
            record=record,
            seconds=seconds,
            dtmf=[(1.0, dtmf)] if dtmf else [],
            from_number=from_,
            to_number=to,
            status_callback=True,
        )
    )
    typer.echo(summary.to_table())


@app.command("realtime-server")
def realtime_server(
    host: Annotated[str, typer.Option(help="Bind address (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8765,
    api_key: Annotated[
        str | None, typer.Option(help="Require this key (Bearer or api-key header).")
    ] = None,
) -> None:
    """Run the local OpenAI-Realtime-compatible server (GA protocol) for offline use."""
    from service.modelserver.server import main as serve_realtime

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    serve_realtime(host, port, api_key=api_key)


from service.campaigns.cli import campaign_app  # noqa: E402 - one block per command group

app.add_typer(campaign_app, name="campaign")

hotline = typer.Typer(help="The order-status hotline.", no_args_is_help=True)
app.add_typer(hotline, name="hotline")


@hotline.command("seed")
def hotline_seed() -> None:
    """Load the order fixture into Redis (REDIS_URL, REDIS_KEY_PREFIX); idempotent."""
    from service.agent.hotline.orders import hotline_seed_main

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    count = asyncio.run(hotline_seed_main(settings.redis_url or None, settings.redis_key_prefix))
    typer.echo(f"seeded {count} orders")


@app.command()
def demo(
    seconds: Annotated[float, typer.Option(help="Length of the demo call.")] = 4.0,
    record: Annotated[Path, typer.Option(help="Where the caller's ear is recorded.")] = Path(
        "demo-call.wav"
    ),
) -> None:
    """The main job on one machine: the service on loopback plus one softphone call."""
    from service.demo import run_demo

    raise typer.Exit(asyncio.run(run_demo(seconds=seconds, record=record)))


@app.command()
def loadtest(
    calls: Annotated[int, typer.Option(min=1, help="Concurrent calls.")] = 50,
    seconds: Annotated[float, typer.Option(min=5, max=3600, help="Length of each call.")] = 20,
    mode: Annotated[str, typer.Option(help="AUDIO_MODE: transcode | passthrough.")] = "transcode",
    target: Annotated[
        str | None, typer.Option(help="A running service's base URL (default: start one).")
    ] = None,
    target_pid: Annotated[
        int | None, typer.Option(help="The target's process id, to measure its CPU and RSS.")
    ] = None,
    model: Annotated[
        str, typer.Option(help="'local' (a synthetic model pool) or a Realtime ws:// URL.")
    ] = "local",
    model_procs: Annotated[int, typer.Option(min=1, help="Processes in the model pool.")] = 2,
    redis_url: Annotated[
        str | None, typer.Option(help="Default: a redis-server started on loopback.")
    ] = None,
    barge_every: Annotated[
        float | None, typer.Option(help="Barge in again every this many seconds.")
    ] = None,
    log_dir: Annotated[
        Path | None, typer.Option(help="Keep the started processes' logs here.")
    ] = None,
    service_env: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE for a service it starts (repeatable).")
    ] = None,
) -> None:
    """Place N simulated Twilio calls (real time) and print what they cost the service."""
    if mode not in ("transcode", "passthrough"):
        raise typer.BadParameter("transcode or passthrough", param_hint="--mode")
    from service.loadtest.cli import run_loadtest
    from service.loadtest.run import LoadSpec

    settings = Settings()
    configure_logging("console", "error")  # the softphones log every call at info
    spec = LoadSpec(
        calls=calls,
        seconds=seconds,
        mode=mode,
        target=target,
        target_pid=target_pid,
        auth_token=settings.twilio_auth_token.get_secret_value() or None if target else None,
        public_url=settings.public_url if target else None,
        model=model,
        model_procs=model_procs,
        redis_url=redis_url,
        barge_every_s=barge_every,
        service_env=tuple(
            (key, value) for key, _, value in (item.partition("=") for item in service_env or [])
        ),
    )
    raise typer.Exit(run_loadtest([spec], log_dir=log_dir))


def main() -> None:
    app()
