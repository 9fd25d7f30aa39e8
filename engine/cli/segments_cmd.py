"""``tact segments``: build, list, explain."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from engine.app import segments
from engine.app.segments import BuildOptions, BuildReport
from engine.cli.console import err, out
from engine.cli.runtime import Runtime

app = typer.Typer(
    help="Customer segments: rule segments and learned (clustered) segments.",
    no_args_is_help=True,
)


def _as_of(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("an ISO date or time, e.g. 2026-11-01") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command("build")
def build_(
    k_min: int = typer.Option(4, "--k-min", min=2, help="Fewest clusters to try."),
    k_max: int = typer.Option(10, "--k-max", min=2, help="Most clusters to try."),
    seed: int = typer.Option(42, help="Random seed: same data and seed, same segments."),
    sample: int = typer.Option(
        3000, min=2, help="Contacts sampled (seeded) to score each k by silhouette."
    ),
    min_size: int | None = typer.Option(
        None,
        "--min-size",
        min=1,
        help="Clusters smaller than this join the standard audience (default: 2%% of "
        "profiled contacts).",
    ),
    rules: Path | None = typer.Option(
        None, help="Rule segments file (default: templates/segments.toml)."
    ),
    export: Path | None = typer.Option(None, help="Also write the model as JSON to this file."),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Compute profiles as of this date (default: now)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (errors too)."),
) -> None:
    """Profile every contact, cluster them, apply the rule segments, store the result.

    Contacts who objected to profiling are left out and get the standard version.
    """
    if k_max < k_min:
        raise typer.BadParameter("--k-max must be at least --k-min")
    options = BuildOptions(
        k_min=k_min,
        k_max=k_max,
        seed=seed,
        sample=sample,
        min_size=min_size,
        as_of=_as_of(as_of),
    )
    with err.status("building segments") as status:
        report = segments.build(
            Runtime(),
            options,
            rules_path=rules,
            progress=lambda message: status.update(f"building segments: {message}"),
            export=export,
        )
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "version": report.version,
                    "k": report.model.k,
                    "silhouette": report.model.chosen_silhouette,
                    "profiled": report.profiled,
                    "opted_out": report.opted_out,
                    "rules": [{"name": n, "matched": m, "assigned": a} for n, m, a in report.rules],
                    "learned": report.learned,
                    "standard": report.standard,
                    "seconds": report.seconds,
                    "exported_to": str(export) if export is not None else None,
                },
                ensure_ascii=False,
                default=str,
            )
        )
        return
    out.print(_silhouettes(report))
    out.print(_segments_table(report))
    if export is not None:
        err.print(f"model written to {export}")


def _silhouettes(report: BuildReport) -> Table:
    model = report.model
    table = Table(title="silhouette per k (higher separates better)")
    table.add_column("k", justify="right")
    table.add_column("silhouette", justify="right")
    table.add_column("")
    for k, score in sorted(model.silhouette.items()):
        table.add_row(str(k), f"{score:.3f}", "chosen" if k == model.k else "")
    return table


def _segments_table(report: BuildReport) -> Table:
    model = report.model
    score = model.chosen_silhouette
    table = Table(
        title=f"segments, model v{report.version}: k={model.k}"
        + (f", silhouette {score:.3f}" if score is not None else "")
        + f", {report.profiled:,} profiled, {report.seconds:.1f} s"
    )
    table.add_column("segment")
    table.add_column("source")
    table.add_column("contacts", justify="right")
    table.add_column("description")
    for name, matched, assigned in report.rules:
        table.add_row(escape(name), "rule", f"{assigned:,}", f"matched {matched:,}")
    for cluster in model.clusters:
        if cluster.name:
            table.add_row(
                cluster.name,
                "learned",
                f"{report.learned.get(cluster.name, 0):,}",
                cluster.description,
            )
    folded = [c for c in model.clusters if c.folded]
    note = f"{len(folded)} small cluster(s) folded in, " if folded else ""
    table.add_row(
        "(standard)",
        "",
        f"{report.standard + report.opted_out:,}",
        f"{note}{report.opted_out:,} opted out of personalization",
    )
    return table


@app.command("list")
def list_(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Each segment with its size and description, and the standard audience."""
    view = segments.overview(Runtime())
    if as_json:
        out.print_json(json.dumps(view.as_dict(), ensure_ascii=False))
        return
    model = view.model
    if model is None:
        out.print("no segments built yet: run [bold]tact segments build[/]")
    else:
        score = model.silhouette
        out.print(
            f"model v{model.version} built {model.created_at}: k={model.k}, seed "
            f"{model.seed}" + (f", silhouette {score:.3f}" if score is not None else "")
        )
    table = Table()
    table.add_column("segment")
    table.add_column("source")
    table.add_column("contacts", justify="right")
    table.add_column("description")
    for seg in view.segments:
        if seg.source == "folded":
            table.add_row(
                f"[dim]{seg.slug}[/]",
                "folded",
                f"({seg.cluster_size or 0:,})",
                f"[dim]{escape(seg.description)} -> standard[/]",
            )
        else:
            extra = f" (matched {seg.matched or 0:,})" if seg.source == "rule" else ""
            table.add_row(
                escape(seg.name or ""),
                seg.source,
                f"{seg.size:,}",
                escape(seg.description) + extra,
            )
    std = view.standard
    table.add_row(
        "(standard)",
        "",
        f"{std.size:,}",
        f"folded {std.folded:,}, opted out {std.opted_out:,}, not yet built {std.unassigned:,}",
    )
    out.print(table)


@app.command("explain")
def explain_(
    address: str = typer.Argument(..., help="The contact's email address."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Why a contact is in its segment (or gets the standard version)."""
    info = segments.explain(Runtime(), address)
    if as_json:
        out.print_json(json.dumps(info.as_dict(), ensure_ascii=False))
        return
    out.print(f"contact {info.contact_id}")
    out.print(f"segment: [bold]{info.segment or 'standard'}[/]")
    out.print(f"why: {info.reason}", markup=False)
    if info.features is not None:
        table = Table(title=f"features vs the population, as of {(info.as_of or '')[:10]}")
        table.add_column("feature")
        table.add_column("value", justify="right")
        table.add_column("population median", justify="right")
        table.add_column("percentile", justify="right")
        for f in info.features:
            pct = f.percentile
            table.add_row(
                f.feature,
                _num(f.value),
                _num(f.population_median),
                "-" if pct is None else f"{pct:.0f}",
            )
        out.print(table)
        out.print(f"top categories: {', '.join(info.top_categories or ()) or '-'}")
    if info.clusters is not None:
        table = Table(title="distance to each learned cluster")
        table.add_column("cluster", justify="right")
        table.add_column("segment")
        table.add_column("distance", justify="right")
        table.add_column("description")
        for c in info.clusters:
            mark = " *" if c.nearest else ""
            table.add_row(
                f"{c.cluster}{mark}",
                c.segment or "(folded: standard)",
                f"{c.distance:.3f}",
                c.description,
            )
        out.print(table)
    if info.rules:
        table = Table(title="rule segments, in order")
        table.add_column("rule segment")
        table.add_column("matches")
        table.add_column("rule")
        for r in info.rules:
            table.add_row(escape(r.name), "yes" if r.matches else "no", escape(r.rule))
        out.print(table)


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3f}"
