"""classify under `torchrun --nproc-per-node 2` computes what one process computes: each rank
takes half of every batch of whole sequences, and the per-sequence loss averages to the
whole batch's."""

from __future__ import annotations

from test_torchrun import _assert_same_run, _torchrun_train

from lstm_edge.toolchain import classify_data as cd
from lstm_edge.toolchain.train import TrainOptions, train


def test_two_processes_match_one_on_a_classify_run(tmp_path):
    seqs = cd.builtin_sequences(120, seed=3)
    csv = tmp_path / "seqs.csv"
    cd.write_csv(seqs, csv, [i for i in range(120) if seqs.lengths[i] <= 60])
    steps = 4
    single = tmp_path / "single"
    train(
        TrainOptions(
            single,
            task="classify",
            csv=csv,
            time_column="time",
            hidden=8,
            batch_size=8,
            steps=steps,
            eval_every=2,
            dropout=0.0,
            log_every=1,
            threads=1,
            progress=False,
        )
    )
    double = tmp_path / "double"
    args = ["--task", "classify", "--csv", str(csv), "--time-column", "time", "--hidden", "8"]
    _torchrun_train(
        double, [*args, "--batch-size", "8", "--steps", str(steps), "--eval-every", "2"]
    )
    _assert_same_run(single, double, steps)
