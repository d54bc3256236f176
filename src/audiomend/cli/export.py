"""``audiomend export``: export a trained run to ONNX with its streaming state."""

from __future__ import annotations

import click


@click.command(name="export")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Output .onnx path (a .json sidecar is written beside it).")
def command(run_dir: str, output: str) -> None:
    """Export RUN_DIR's checkpoint to ONNX (recurrent state as explicit input/output).

    \b
    Example:
      audiomend export runs/maskgru16k -o src/audiomend/model/weights/maskgru16k.onnx
    """
    from audiomend.train import require_torch

    require_torch()
    from audiomend.train.export import export

    path = export(run_dir, output)
    click.echo(f"wrote {path} and {path.with_suffix('.json')}", err=True)
