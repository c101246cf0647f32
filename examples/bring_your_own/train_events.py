"""A user's own PyTorch training script (their module, their names, their data), which
ends in the three lines that take the trained model to a device: the int8 artifact and
the C bundle. Run: python examples/bring_your_own/train_events.py [OUT_DIR]

The data: event codes 0..9 from a machine that cycles through a few routines with noise;
the model predicts the next event code. Nothing here is lstm-edge's until the last lines.
"""

import sys

import numpy as np
import torch
from torch import nn


class NextEvent(nn.Module):
    def __init__(self, codes: int = 10):
        super().__init__()
        self.codes = nn.Embedding(codes, 8)
        self.rnn = nn.LSTM(8, 24, num_layers=2, batch_first=True)
        self.classify = nn.Linear(24, codes)

    def forward(self, x):
        y, _ = self.rnn(self.codes(x))
        return self.classify(y)


def event_log(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    routines = [[1, 2, 3, 2, 4], [5, 6, 5, 7], [8, 9, 0]]
    out: list[int] = []
    while len(out) < n:
        out += routines[rng.integers(len(routines))]
        if rng.random() < 0.1:
            out.append(int(rng.integers(10)))  # a stray event
    return np.array(out[:n], np.int64)


def train(steps: int = 300) -> NextEvent:
    torch.manual_seed(0)
    log = torch.from_numpy(event_log(20_000))
    model = NextEvent()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        starts = torch.randint(0, len(log) - 65, (32,))
        batch = torch.stack([log[s : s + 65] for s in starts])
        loss = nn.functional.cross_entropy(
            model(batch[:, :-1]).flatten(0, 1), batch[:, 1:].flatten()
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"trained: loss {loss.item():.3f}")
    return model.eval()


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "build"
    model = train()
    # ---- to the device: three lines --------------------------------------------------------
    from lstm_edge.toolchain.from_torch import export_int8_and_c, from_torch

    from_torch(model, f"{out}/ckpt", token_names=tuple(f"event{i}" for i in range(10)), force=True)
    print(export_int8_and_c(f"{out}/ckpt", out, force=True))
