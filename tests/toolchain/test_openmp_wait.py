"""The CLI makes torch's OpenMP threads wait asleep (OMP_WAIT_POLICY=PASSIVE) unless the
user chose a policy: spinning threads ran training 2.6-8x slower beside one busy process on
a 2-core machine, 1.14x with it (scripts/training_under_load.py measures it; no timing
here)."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = (
    "import os, lstm_edge.toolchain.cli, torch; "
    "print(os.environ['OMP_WAIT_POLICY'], torch.get_num_threads() >= 1)"
)


def _policy(env_policy: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_policy is not None:
        env["OMP_WAIT_POLICY"] = env_policy
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.split()[0]


def test_cli_sets_passive_wait_before_torch_loads() -> None:
    assert _policy(None) == "PASSIVE"


def test_a_users_policy_wins() -> None:
    assert _policy("ACTIVE") == "ACTIVE"


def test_importing_the_cli_does_not_import_torch() -> None:
    # The policy is read when torch's OpenMP library loads: the CLI must set it first.
    probe = "import sys, lstm_edge.toolchain.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.stdout.strip() == "False"
