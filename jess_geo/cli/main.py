"""The `jess-geo` command group: each subcommand lives in its own module."""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import os
import signal
import sys
import threading
from typing import Any, NoReturn

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


def _end_process(code: int) -> NoReturn:
    """End the console process with ``code``, skipping the interpreter's teardown when that is safe.

    With torch loaded, CPython's shutdown (module teardown, then the C++ destructors of libtorch
    and the CUDA libraries) costs 0.5-0.7 s on the 2-core machine, a quarter of a small scene's
    ``predict`` (benchmarks/onnx_startup.py). Every output is closed and renamed before ``run``
    returns, so after the ``atexit`` functions (logging's flush, temporary-folder finalizers,
    Dask's cleanup) and a flush of stdout / stderr nothing is left to do. A live non-daemon thread
    (one that CPython would wait for) or ``JESS_GEO_FULL_EXIT=1`` (profilers that report at exit)
    keeps the ordinary ``sys.exit``.
    """
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if others or os.environ.get("JESS_GEO_FULL_EXIT", "") not in ("", "0"):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: what the reader missed is gone either way
            pass
    os._exit(code)


def main() -> None:
    """Console entry point (installs the SIGTERM / SIGINT handlers, runs :func:`run`, ends the process)."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    code = run()
    # The command is over: its outputs are complete or removed. CPython puts the default handlers
    # back while it shuts down, so a signal in that last moment would kill a finished run (exit
    # -15 with every output written); ignoring them keeps the exit code true to the outputs.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _end_process(code)


if __name__ == "__main__":
    main()
