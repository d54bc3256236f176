"""``audiomend export``: export a trained run to ONNX with its streaming state."""

from __future__ import annotations

import click


@click.command(name="export")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output .onnx path (a .json sidecar is written beside it).")
def command(run_dirs: tuple[str, ...], output: str) -> None:
    """Export a run's checkpoint to ONNX (recurrent state as explicit input/output).

    Several runs of the same width export as one ensemble network: the geometric mean of their
    gains, their states stacked.

    \b
    Examples:
      audiomend export runs/maskgru16k -o my.onnx
      audiomend export runs/maskgru16k-a runs/maskgru16k-b -o src/audiomend/model/weights/maskgru16k.onnx
    """
    from audiomend.train import require_torch

    require_torch()
    from audiomend.train.export import export

    path = export(run_dirs, output)
    click.echo(f"wrote {path} and {path.with_suffix('.json')}", err=True)
