"""The `analyze` options for DataForSEO (--serp, --estimate, --dataforseo-*), kept here so that the command
module only wires them in: `@dataforseo_options`, then `prepare()` before the run and `finish()` after it.

Fetch-only settings (JavaScript, Accept-Language, user agent) travel in the options as `_dataforseo_*`:
keys starting with `_` are not part of a run's identity, so re-running with --dataforseo-js --retry-failed
retries the failed pages of the same run instead of paying for every page again in a new one.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..core.config import truthy
from ..core.errors import UserError
from .dataforseo import (
    ACCOUNT_OPTION,
    PAGE_PRICE,
    PAGE_PRICE_JS,
    PAGE_PRICE_SOURCE,
    Account,
    config_path,
    read_config_section,
)
from .fetch import is_http_url
from .serp import DEFAULT_DEPTH, serp_cost


def dataforseo_options(f):
    """Add the DataForSEO options to a click command (they arrive as keyword arguments)."""
    options = [
        click.option(
            "--serp",
            "serp_keyword",
            default=None,
            help="Analyse the pages ranking on Google for this keyword (DataForSEO SERP API; pages "
            "fetched by revprompt, or by DataForSEO with --source dataforseo).",
        ),
        click.option(
            "--location",
            "serp_location",
            default=None,
            help="With --serp: location name or code (default 'United States').",
        ),
        click.option(
            "--language", "serp_language", default=None, help="With --serp: language code or name (default 'en')."
        ),
        click.option(
            "--depth",
            "serp_depth",
            type=click.IntRange(1, 200),
            default=None,
            help=f"With --serp: how many results to take (default {DEFAULT_DEPTH}).",
        ),
        click.option(
            "--dataforseo-js",
            "dataforseo_js",
            is_flag=True,
            default=None,
            help="DataForSEO loads the page's JavaScript (extra cost; for pages reported 'broken').",
        ),
        click.option(
            "--dataforseo-language",
            "dataforseo_language",
            default=None,
            help="Accept-Language DataForSEO's crawler sends (e.g. en-US); some sites refuse it without.",
        ),
        click.option(
            "--dataforseo-user-agent",
            "dataforseo_user_agent",
            default=None,
            help="User agent DataForSEO's crawler sends instead of its default.",
        ),
        click.option(
            "--estimate",
            "estimate_only",
            is_flag=True,
            help="Print what the DataForSEO calls of this command would cost, and stop.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def uses_dataforseo(kw: dict, source_name: str | None) -> bool:
    return bool(kw.get("serp_keyword")) or source_name == "dataforseo"


def prepare(kw: dict, targets: list[str], source_name: str | None, options: dict) -> str | None:
    """Fold the options into `targets` / `options`; the source to use. Raises UserError on misuse."""
    keyword = kw.get("serp_keyword")
    if keyword is not None:
        if targets:
            raise UserError("--serp takes the keyword itself: give no other targets, --urls or --crawl with it")
        if source_name not in (None, "dataforseo"):
            raise UserError(f"--serp fetches pages itself or through --source dataforseo, not --source {source_name}")
        targets.append(keyword)
        options.update(
            serp_location=kw.get("serp_location"),
            serp_language=kw.get("serp_language"),
            serp_depth=kw.get("serp_depth") or DEFAULT_DEPTH,
            serp_fetch="dataforseo" if source_name == "dataforseo" else "web",
        )
        source_name = "serp"
    elif any(kw.get(k) is not None for k in ("serp_location", "serp_language", "serp_depth")):
        raise UserError("--location, --language and --depth go with --serp")
    if kw.get("dataforseo_js"):
        options["_dataforseo_javascript"] = True
    accept_language = kw.get("dataforseo_language") or (kw.get("serp_language") if keyword else None)
    if accept_language:
        options["_dataforseo_accept_language"] = accept_language
    if kw.get("dataforseo_user_agent"):
        options["_dataforseo_user_agent"] = kw["dataforseo_user_agent"]
    if uses_dataforseo(kw, source_name):
        options[ACCOUNT_OPTION] = Account()
    return source_name


def estimate(kw: dict, targets: list[str], source_name: str | None, options: dict) -> str:
    """What the command's DataForSEO calls would cost, without making any."""
    if not uses_dataforseo(kw, source_name):
        raise UserError("--estimate is for DataForSEO runs (--source dataforseo or --serp); other sources are free")
    conf = read_config_section()
    price = conf.get("page_price")
    lines = []
    if source_name == "serp":
        depth = int(options.get("serp_depth") or DEFAULT_DEPTH)
        lines.append(f"SERP: 1 call, depth {depth}: about {usd(serp_cost(depth))} (DataForSEO's live price)")
        pages = depth if options.get("serp_fetch") == "dataforseo" else 0
        if not pages:
            lines.append(f"pages: up to {depth}, fetched by revprompt (free)")
    else:
        pages = sum(_count_urls(t) for t in targets)
    if pages:
        js = bool(options.get("_dataforseo_javascript") or truthy(conf.get("enable_javascript", False)))
        if isinstance(price, (int, float)) and not isinstance(price, bool) and price >= 0:
            source = f"page_price in {config_path()}"
        else:
            price = PAGE_PRICE_JS if js else PAGE_PRICE
            source = (
                f"{PAGE_PRICE_SOURCE}"
                + (", JavaScript on: basic + 9 x basic" if js else "")
                + "; set page_price under [dataforseo] in the config if yours differs"
            )
        lines.append(
            f"pages: up to {pages} content-parsing calls x {usd(price)} a page = about {usd(pages * price)} ({source})"
        )
    lines.append("pages a resumed run already holds are not fetched again; nothing was called")
    return "\n".join(lines)


def usd(amount: float) -> str:
    """Dollars as DataForSEO bills them: fractions of a cent, without trailing zeros ($0.00375)."""
    return f"${round(amount, 6):.6f}".rstrip("0").rstrip(".") if amount else "$0"


def _count_urls(target: str) -> int:
    if is_http_url(target):
        return 1
    path = Path(target).expanduser()
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return len({line.strip() for line in lines if is_http_url(line.strip())})


def finish(store, run_id: str | None, options: dict) -> None:
    """Show what the run's DataForSEO calls cost and add it to the run's record."""
    account = options.get(ACCOUNT_OPTION)
    if not isinstance(account, Account) or not account.calls:
        return
    total = store.add_run_cost(run_id, "dataforseo", account.cost) if run_id else account.cost
    spent = f"DataForSEO: {account.calls} call{'s' if account.calls != 1 else ''}, {usd(account.cost)}"
    if run_id and abs(total - account.cost) > 1e-9:
        spent += f" (run total {usd(total)})"
    click.echo(spent, err=True)
