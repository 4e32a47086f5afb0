"""The `jess-geo` command group: each subcommand lives in its own module."""

from __future__ import annotations

import importlib
import importlib.util
import signal
import sys
from typing import Any

import click

import jess_geo
from jess_geo.errors import Cancelled, JessGeoError

SUBCOMMANDS = {
    "train": "jess_geo.cli.train",
    "adapt": "jess_geo.cli.adapt",
    "evaluate": "jess_geo.cli.evaluate",
    "predict": "jess_geo.cli.predict",
    "info": "jess_geo.cli.info",
    "export": "jess_geo.cli.export",
    "check": "jess_geo.cli.check",
    "stats": "jess_geo.cli.stats",
    "change": "jess_geo.cli.change",
    "sample": "jess_geo.cli.sample",
    "assess": "jess_geo.cli.assess",
}


class LazyGroup(click.Group):
    """Imports a subcommand's module only when it runs (keeps `--help` and `--version` fast)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n, mod in SUBCOMMANDS.items() if importlib.util.find_spec(mod) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in SUBCOMMANDS or importlib.util.find_spec(SUBCOMMANDS[name]) is None:
            return None
        return importlib.import_module(SUBCOMMANDS[name]).command


def _on_signal(signum: int, frame: Any) -> None:
    """SIGTERM / SIGINT: only set the stop flag when the running command polls it (predict);
    nothing once its outputs are final; otherwise stop at once (SIGTERM raises Cancelled,
    SIGINT KeyboardInterrupt)."""
    from jess_geo.progress import STOP

    name = signal.Signals(signum).name
    if STOP.finished:  # the command's outputs are final: nothing to stop
        return
    if STOP.armed:
        STOP.request(name)
        return
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Cancelled(f"Stopped by {name}; outputs were not written (partial files removed).")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(jess_geo.__version__, prog_name="jess-geo")
def cli() -> None:
    """Map ground cover (biological soil crusts first) in GeoTIFFs and photos with U-Nets and JESS."""


def report_error(message: str, args: list[str] | None = None) -> None:
    """Print a one-line error to stderr (and as a JSON line when --json-progress or --json is on)."""
    argv = sys.argv[1:] if args is None else args
    if "--json-progress" in argv or "--json" in argv:
        import json

        print(json.dumps({"stage": "error", "error": message}), flush=True)
    click.echo(f"jess-geo: error: {message}", err=True)


def run(args: list[str] | None = None) -> int:
    """Run the command line on ``args`` (default ``sys.argv[1:]``) and return its exit code.

    User errors become one line on stderr and exit code 2, cancellation exit code 1; no traceback.
    """
    from jess_geo.progress import STOP

    STOP.reset()
    try:
        code = cli.main(args=args, prog_name="jess-geo", standalone_mode=False)  # an int: the command's ctx.exit(N)
    except Cancelled as exc:
        report_error(str(exc), args)
        return 1
    except KeyboardInterrupt:
        report_error("Interrupted; outputs were not written (partial files removed).", args)
        return 1
    except JessGeoError as exc:
        report_error(str(exc), args)
        return 2
    except click.exceptions.Abort:
        report_error("Aborted.", args)
        return 1
    except click.ClickException as exc:
        report_error(exc.format_message(), args)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


def main() -> None:
    """Console entry point (installs the SIGTERM / SIGINT handlers, then :func:`run`)."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    code = run()
    # The command is over: its outputs are complete or removed. CPython puts the default handlers
    # back while it shuts down, so a signal in that last moment would kill a finished run (exit
    # -15 with every output written); ignoring them keeps the exit code true to the outputs.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    main()
