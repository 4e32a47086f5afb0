"""TENT defaults: steps x lr on the demo model and the colour-shifted sample scene (accuracy vs its labels).

A quick, single-seed check on synthetic data (the real-data comparison is benchmarks/adapt_toolbox.py).
Prepare the target once: sample_data/scene.tif with each valid pixel's bands x (0.8, 0.9, 1.15) - 10,
clipped to 1..255, in SHIFTED/scene.tif; its labels are sample_data/scene_labels.tif copied to MASKS/scene.tif.

    nice -n 10 .venv/bin/python benchmarks/adapt_tent_defaults.py LR SHIFTED MASKS
"""
import copy, sys, time
import torch
torch.set_num_threads(1)
from jess_geo.adaptation.common import Crops, crop_batches, figures, image_scenes, images_of, labelled_scenes, window_batches
from jess_geo.adaptation.tent import tent_steps
from jess_geo.models.modelfile import bundled_demo_model, load_model_file
from jess_geo.training.batchnorm import recalibrate

T, M = sys.argv[2], sys.argv[3]
base = load_model_file(bundled_demo_model())
meta = base.metadata
crops = Crops(128, 8, 0)
scenes = image_scenes(T, meta)
windows = window_batches(labelled_scenes(T, M, meta), meta, crops)
k = len(meta["classes"])
def show(tag, net):
    f = figures(net, windows, k); print(tag, {a: round(b, 4) for a, b in f.items()}, flush=True)
show("source model", base.model)
adabn = copy.deepcopy(base.model); recalibrate(adabn, images_of(crop_batches(scenes, meta, Crops(128, 8, 1), 32))); show("adabn (0 steps)", adabn)
for lr in (float(sys.argv[1]),):
    net = copy.deepcopy(base.model); done = 0; t0 = time.time()
    for upto in (5, 10, 20, 40):
        tent_steps(net, crop_batches(scenes, meta, Crops(128, 8, 100 + upto), (upto - done) * 8), lr); done = upto
        ev = copy.deepcopy(net); recalibrate(ev, images_of(crop_batches(scenes, meta, Crops(128, 8, 1), 32)))
        show(f"tent lr {lr:g} steps {upto}", ev)
    print("seconds", round(time.time() - t0), flush=True)
