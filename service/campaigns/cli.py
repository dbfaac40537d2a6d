"""``python -m service campaign …``: run a campaign and watch it, over the operator API.

The service processes dial (they hold the calls' media); this command creates the campaign,
uploads the contacts, and follows progress until the campaign is done. ``--url`` is the
service (default ``PUBLIC_URL``); the token is ``--token`` or the first of ``API_TOKENS``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from service.campaigns.report import progress_line, results_table
from service.settings import Settings

campaign_app = typer.Typer(help="Outbound call campaigns.", no_args_is_help=True)

UrlOption = Annotated[str | None, typer.Option(help="Service URL (default PUBLIC_URL).")]
TokenOption = Annotated[str | None, typer.Option(help="API token (default: API_TOKENS[0]).")]


def _client(url: str | None, token: str | None) -> httpx.AsyncClient:
    settings = Settings()
    token = token or next(iter(settings.operator_tokens), "")
    if not token:
        raise typer.BadParameter("no API token: pass --token or set API_TOKENS")
    return httpx.AsyncClient(
        base_url=url or settings.public_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30.0,
    )


def _check(reply: httpx.Response) -> Any:
    if reply.status_code >= 400:
        typer.echo(f"error: HTTP {reply.status_code}: {reply.text}", err=True)
        raise typer.Exit(1)
    return reply.json() if "json" in reply.headers.get("content-type", "") else reply.text


async def follow(http: httpx.AsyncClient, campaign_id: str, *, every_s: float = 0.5) -> None:
    """Print the progress line until the campaign is done or canceled, then the results."""
    tty = sys.stdout.isatty()
    while True:
        status = _check(await http.get(f"/v1/campaigns/{campaign_id}"))
        line = progress_line(status)
        typer.echo(f"\r{line}" if tty else line, nl=not tty)
        if status["state"] in ("done", "canceled"):
            break
        await asyncio.sleep(every_s if tty else max(every_s, 2.0))
    typer.echo("")
    results = _check(await http.get(f"/v1/campaigns/{campaign_id}/results"))["results"]
    typer.echo(results_table(results))


@campaign_app.command("run")
def run(
    contacts: Annotated[Path, typer.Argument(help="CSV or JSON: contact_id, phone, …")],
    profile: Annotated[str, typer.Option(help="Agent profile name.")] = "default",
    concurrency: Annotated[int, typer.Option(help="Live calls at most.")] = 5,
    cps: Annotated[float, typer.Option(help="Calls per second at most.")] = 1.0,
    windows: Annotated[str, typer.Option(help="e.g. 'Mon-Fri 09:00-20:00'.")] = "",
    timezone: Annotated[str, typer.Option(help="Zone for numbers without one.")] = "",
    from_: Annotated[str, typer.Option("--from", help="Caller id (E.164).")] = "",
    max_attempts: Annotated[int, typer.Option(help="Dials per contact at most.")] = 3,
    detach: Annotated[bool, typer.Option(help="Print the id and return.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Create a campaign, upload its contacts, follow it to the end."""
    body: dict[str, Any] = {"profile": profile, "concurrency": concurrency, "cps": cps,
                            "retry": {"max_attempts": max_attempts}}  # fmt: skip
    for key, value in (("windows", windows), ("timezone", timezone), ("from", from_)):
        if value:
            body[key] = value
    data = contacts.read_bytes()
    kind = "text/csv" if contacts.suffix.lower() == ".csv" else "application/json"

    async def main() -> None:
        async with _client(url, token) as http:
            campaign_id = _check(await http.post("/v1/campaigns", json=body))["id"]
            path = f"/v1/campaigns/{campaign_id}/contacts"
            headers = {"Content-Type": kind}
            upload = _check(await http.post(path, content=data, headers=headers))
            rejected = len(upload["errors"])
            typer.echo(
                f"campaign {campaign_id}: {upload['added']} contacts added, "
                f"{upload['duplicates']} already there, {rejected} rejected"
            )
            for error in upload["errors"]:
                typer.echo(f"  row {error['row']} {error['contact_id']}: {error['error']}")
            if not detach:
                await follow(http, campaign_id)

    asyncio.run(main())


@campaign_app.command("status")
def status(campaign_id: str, url: UrlOption = None, token: TokenOption = None) -> None:
    """The campaign's state and counters."""

    async def main() -> None:
        async with _client(url, token) as http:
            typer.echo(progress_line(_check(await http.get(f"/v1/campaigns/{campaign_id}"))))

    asyncio.run(main())


def _action(action: str, campaign_id: str, url: str | None, token: str | None) -> None:
    async def main() -> None:
        async with _client(url, token) as http:
            reply = _check(await http.post(f"/v1/campaigns/{campaign_id}/{action}"))
            typer.echo(f"campaign {campaign_id}: {reply['state']}")

    asyncio.run(main())


@campaign_app.command("pause")
def pause(campaign_id: str, url: UrlOption = None, token: TokenOption = None) -> None:
    """Stop dialing (calls under way carry on)."""
    _action("pause", campaign_id, url, token)


@campaign_app.command("resume")
def resume(campaign_id: str, url: UrlOption = None, token: TokenOption = None) -> None:
    """Dial again."""
    _action("resume", campaign_id, url, token)


@campaign_app.command("cancel")
def cancel(campaign_id: str, url: UrlOption = None, token: TokenOption = None) -> None:
    """Stop for good (calls under way carry on; nobody else is dialed)."""
    _action("cancel", campaign_id, url, token)


@campaign_app.command("export")
def export(
    campaign_id: str,
    output: Annotated[Path | None, typer.Option("-o", help="Write here (default stdout).")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Results per contact as CSV."""

    async def main() -> None:
        async with _client(url, token) as http:
            text = _check(await http.get(f"/v1/campaigns/{campaign_id}/results.csv"))
            if output is None:
                typer.echo(text, nl=False)
            else:
                output.write_text(text)

    asyncio.run(main())


@campaign_app.command("demo")
def demo() -> None:
    """Ten contacts on the offline stand-ins: people, machines, a busy line, a DNC number."""
    from service.campaign_demo import run_campaign_demo

    raise typer.Exit(asyncio.run(run_campaign_demo()))
