"""The ``audiomend`` command line: one module per verb, each thin (parse, call the library, print).

Verbs are loaded lazily so ``audiomend --help`` stays fast. An :class:`AudiomendError` anywhere
prints ``audiomend: error: <message>`` on one line and exits 1; usage errors exit 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from audiomend import __version__
from audiomend.errors import AudiomendError

#: verb -> (module under audiomend.cli, one-line help). A verb whose module does not exist yet
#: is hidden.
VERBS: dict[str, tuple[str, str]] = {
    "restore": ("restore", "Diagnose and repair a recording."),
    "diagnose": ("diagnose", "Say what is wrong with a recording."),
    "assess": ("assess", "Measure quality (PESQ, ESTOI, SI-SDR, DNSMOS, levels)."),
    "degrade": ("degrade", "Damage clean speech on purpose (simulator, corpora)."),
    "align": ("align", "Estimate and remove the delay between two recordings."),
    "bench": ("bench", "Score restoration systems side by side on a corpus."),
    "batch": ("batch", "Restore a whole folder or manifest, resumably."),
    "train": ("train", "Train the restoration network (needs the 'train' extra)."),
    "export": ("export", "Export a trained network to ONNX."),
}


def _module_exists(module: str) -> bool:
    return importlib.util.find_spec(f"audiomend.cli.{module}") is not None


class LazyGroup(click.Group):
    """A click group that imports a verb's module only when that verb runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [v for v, (m, _) in VERBS.items() if _module_exists(m)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in VERBS or not _module_exists(VERBS[name][0]):
            return None
        module = importlib.import_module(f"audiomend.cli.{VERBS[name][0]}")
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(v, VERBS[v][1]) for v in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="audiomend")
def app() -> None:
    """audiomend repairs damaged speech recordings.

    \b
    Examples:
      audiomend restore interview.mp3 -o fixed.wav
      audiomend assess fixed.wav --reference clean.wav
      audiomend degrade clean.wav -o damaged.wav --noise-snr-db 5 --seed 7
    """


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    try:
        rv = app.main(args=argv, prog_name="audiomend", standalone_mode=False)
        # With standalone_mode=False click *returns* the code of ctx.exit(n) / Exit(n).
        if isinstance(rv, int) and not isinstance(rv, bool):
            return rv
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.BadParameter as e:
        # A missing file or a bad value: one line naming it, like every other user error.
        click.echo(f"audiomend: error: {e.format_message()}", err=True)
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("audiomend: aborted", err=True)
        return 130
    except AudiomendError as e:
        click.echo(f"audiomend: error: {e}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("audiomend: interrupted", err=True)
        return 130
    return 0


def run() -> None:
    sys.exit(main())
