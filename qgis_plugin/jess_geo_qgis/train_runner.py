"""Run ``jess-geo train`` / ``adapt`` in a private workspace and follow its epochs (no QGIS, no Qt).

The workspace is a hidden folder beside the model file asked for. The engine's run folder
grows a row in ``curves.csv`` after each validated epoch; a watcher thread reads it and
reports each new epoch. On success the model is moved to its path and the run folder (curves,
confusion matrix, metrics) kept as ``<model>_training``; otherwise the workspace is removed,
so a cancelled or failed run leaves no model file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable, List, Sequence, Union

from .protocol import Canceled, Failed, failure_message
from .runner import run_json_command
from .training import (
    FIGURES,
    EpochRow,
    Trained,
    TrainRequest,
    Workspace,
    build_train_command,
    check_train_request,
    class_table_json,
    final_metrics,
    link_names,
    parse_curves,
    run_folder,
)

WATCH_INTERVAL_S = 0.5
TrainOutcome = Union[Trained, Failed, Canceled]


def _link(source: str, target: str) -> None:
    """Make ``target`` show ``source``: a symbolic link, or a copy where links are not allowed."""
    try:
        os.symlink(os.path.abspath(source), target)
    except (OSError, NotImplementedError):
        shutil.copy2(source, target)


def prepare_workspace(request: TrainRequest) -> Workspace:
    """Create the workspace and lay out what the engine reads (images, labels, class table)."""
    folder = os.path.dirname(os.path.abspath(request.model_path))
    workspace = Workspace(tempfile.mkdtemp(prefix=f".{Path(request.model_path).stem}-jess-geo-", dir=folder))
    if request.base_model:
        _link_all(request.targets, workspace.path("targets"))
        return workspace
    names = _link_all(request.images, workspace.path("images"))
    os.mkdir(workspace.path("masks"))
    suffix = Path(request.labels_path).suffix
    for name in names:
        _link(request.labels_path, workspace.path("masks", Path(name).stem + suffix))
    with open(workspace.path("classes.json"), "w", encoding="utf-8") as table:
        table.write(class_table_json(request.classes))
    return workspace


def _link_all(paths: Sequence[str], folder: str) -> List[str]:
    os.mkdir(folder)
    names = link_names(paths)
    for path, name in zip(paths, names):
        _link(path, os.path.join(folder, name))
    return names


class CurveWatcher(threading.Thread):
    """Reads ``curves.csv`` every ``interval`` seconds and reports epochs it has not reported."""

    def __init__(self, path: str, on_epoch: Callable[[EpochRow], None], interval: float = WATCH_INTERVAL_S):
        super().__init__(daemon=True)
        self.path, self.on_epoch, self.interval = path, on_epoch, interval
        self.seen = 0
        self.stopped = threading.Event()

    def poll(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as table:
                rows = parse_curves(table.read())
        except OSError:
            return
        for row in rows:
            if row.epoch > self.seen:
                self.seen = row.epoch
                self.on_epoch(row)

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.poll()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)
        self.poll()


def run_train(
    executable: str,
    request: TrainRequest,
    on_epoch: Callable[[EpochRow], None] = lambda row: None,
    is_canceled: Callable[[], bool] = lambda: False,
    on_log: Callable[[str], None] = lambda line: None,
) -> TrainOutcome:
    """Run the training (or adaptation) and wait for it; never raises."""
    try:
        check_train_request(request)
        workspace = prepare_workspace(request)
    except (ValueError, OSError) as error:
        return Failed(str(error))
    try:
        watcher = CurveWatcher(os.path.join(workspace.run_dir, "curves.csv"), on_epoch)
        watcher.start()
        try:
            result = run_json_command(build_train_command(executable, request, workspace),
                                      is_canceled=is_canceled, on_log=on_log)
        finally:
            watcher.stop()
        if isinstance(result, Failed):
            return result
        if result.canceled:
            return Canceled()
        if result.returncode != 0:
            return Failed(failure_message(result.returncode, result.events, result.stderr))
        return _keep(request, workspace, final_metrics(result.stdout))
    finally:
        shutil.rmtree(workspace.root, ignore_errors=True)


def _keep(request: TrainRequest, workspace: Workspace, metrics: dict) -> TrainOutcome:
    """Move the new model to its path and keep the run folder beside it."""
    model = os.path.join(workspace.run_dir, "model.pt")
    if not os.path.isfile(model):
        return Failed("jess-geo finished without writing a model; see the log for its messages.")
    if os.path.exists(request.model_path):
        return Failed(f"{request.model_path} appeared while training; the new model was not moved there.")
    os.replace(model, request.model_path)
    kept = run_folder(request.model_path)
    shutil.rmtree(os.path.join(workspace.run_dir, "checkpoints"), ignore_errors=True)
    os.replace(workspace.run_dir, kept)
    figures = [os.path.join(kept, name) for name in FIGURES if os.path.isfile(os.path.join(kept, name))]
    return Trained(request.model_path, figures, dict(metrics, model=request.model_path))
