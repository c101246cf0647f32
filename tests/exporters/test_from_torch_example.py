"""examples/bring_your_own/train_events.py: a user's training script whose last three lines
give the int8 artifact and a checked C bundle; the float artifact predicts what the
user's module predicts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from lstm_edge.runtime import load
from lstm_edge.toolchain.from_torch import export_int8_and_c, from_torch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bring_your_own" / "train_events.py"


def test_example_script_reaches_the_device(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    assert "from_torch(model" in text and "export_int8_and_c(" in text
    spec = importlib.util.spec_from_file_location("train_events", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a shared CI machine
    try:
        module = example.train(steps=40)
    finally:
        torch.set_num_threads(threads)
    # The script's last lines, as written there.
    from_torch(module, tmp_path / "ckpt", token_names=tuple(f"event{i}" for i in range(10)))
    bundle = export_int8_and_c(tmp_path / "ckpt", tmp_path)
    assert bundle.int8_model.is_file() and (bundle.c_bundle / "model_int8_model.c").is_file()
    assert load(bundle.int8_model).scheme == "int8"
    log = example.event_log(300, seed=3)
    with torch.no_grad():
        want = module(torch.from_numpy(log)[None])[0].numpy()
    model = load(bundle.float_model)
    got, _ = model.step(log[None], model.initial_state(1))
    assert float(np.abs(got[0] - want).max()) <= 1e-5
    assert model.config.token_names[3] == "event3"
