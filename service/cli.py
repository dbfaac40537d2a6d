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


def main() -> None:
    app()
