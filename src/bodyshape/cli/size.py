"""``bodyshape size``: the size to buy from measurements and a size chart.

The work is ``bodyshape.sizing`` (``read_measurements``, ``load_chart``, ``recommend``).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from bodyshape.cli.common import fail, units_option


@click.command()
@click.argument("measurements", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--chart", "charts", multiple=True, required=True, metavar="CHART",
              help="Size chart: a CSV file (docs/SIZING.md) or a shipped chart (womens_tops, "
              "womens_bottoms, mens_tops, mens_bottoms). Repeatable.")
@click.option("--garment", default=None,
              help="Only this garment of the chart [default: every garment it lists].")
@units_option()
@click.option("--json", "as_json", is_flag=True,
              help="Print the recommendations as JSON instead of one line each.")
def size(measurements, charts, garment, units, as_json):
    """Recommend a size from MEASUREMENTS (a prediction's measurements.json, or a JSON object
    like {"chest_cm": 92, "waist_cm": 76}).

    Uses the measurements' errors (measurements.json's "errors") to say how sure the
    recommendation is. Exit status: 0 done; 2 usage error (file, chart, garment).
    """
    from bodyshape.sizing import ChartError, load_chart, read_measurements, recommend

    try:
        values, errors = read_measurements(measurements)
        recs = [r for name in charts
                for r in recommend(values, load_chart(name), errors, garment)]
    except (ChartError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        click.echo(json.dumps([r.to_dict(units) for r in recs], indent=2))
        return
    for r in recs:
        click.echo(f"{r.garment}: {r.note}")


COMMANDS = (size,)
