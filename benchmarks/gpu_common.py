"""Helpers shared by the GPU benchmarks (issue 16): data location, config architecture, device facts."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
# The GPU machine only receives this repository: benchmarks/gpu_wheels.sh copies the photos here.
DATA_PLACES = (REPO / "benchmarks" / "gpu_data" / "biocrust_usa", REPO.parent / "shared" / "data" / "biocrust_usa")


def data_dir() -> Path:
    """The biocrust_usa photos and masks: the carried copy, else ../shared/data/biocrust_usa."""
    for place in DATA_PLACES:
        if (place / "images").is_dir():
            return place
    raise SystemExit("biocrust_usa is missing: run benchmarks/gpu_wheels.sh (copies it to benchmarks/gpu_data/)")


def class_table() -> list[dict[str, Any]]:
    """The biocrust_usa class table as model-file class entries (id, name, color)."""
    raw = json.loads((data_dir() / "classes.json").read_text())
    return [{"id": int(k), "name": v["name"], "color": v["color"]} for k, v in sorted(raw.items(), key=lambda kv: int(kv[0]))]


def arch_from_config(path: Path) -> tuple[str, list[int]]:
    """Encoder name and decoder channels of a training config (flat keys or a ``model:`` section)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    model = data.get("model") if isinstance(data.get("model"), dict) else data
    return str(model["encoder"]), [int(c) for c in model["decoder_channels"]]


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when torch sees a GPU, else the CPU; ``cpu`` / ``cuda[:N]`` as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA GPU here")
    return dev


def device_info(dev: torch.device) -> str:
    """One line: the device, torch and CUDA versions."""
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        return (f"device {torch.cuda.get_device_name(dev)} ({p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs), "
                f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    return f"device cpu ({platform.processor() or platform.machine()}), torch {torch.__version__}, {torch.get_num_threads()} threads"


def reset_gpu_memory(dev: torch.device) -> None:
    """Start a new GPU memory peak measurement (nothing on the CPU)."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)


def gpu_memory(dev: torch.device) -> dict[str, float]:
    """Peak MiB allocated and reserved by torch since the last reset (empty on the CPU)."""
    if dev.type != "cuda":
        return {}
    torch.cuda.synchronize(dev)
    return {"allocated": round(torch.cuda.max_memory_allocated(dev) / 2**20, 1),
            "reserved": round(torch.cuda.max_memory_reserved(dev) / 2**20, 1)}
