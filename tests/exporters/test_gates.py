"""The gate permutation PyTorch (i, f, g, o) -> ONNX (i, o, f, c), against a hand-computed step."""

import numpy as np
import pytest
import torch

from lstm_edge.exporters.onnx_export import torch_to_onnx_gates


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def onnx_spec_step(x, h, c, W, R, Wb, Rb):
    """One LSTM step written from the ONNX operator spec (gate order i, o, f, c)."""
    gates = x @ W.T + h @ R.T + Wb + Rb
    i, o, f, g = np.split(gates, 4, axis=-1)
    c_next = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c_next), c_next


def test_permutation_moves_labelled_blocks():
    # Rows labelled by the torch gate they belong to: 0=i, 1=f, 2=g, 3=o, hidden size 2.
    torch_rows = np.repeat(np.arange(4), 2)[:, None] * np.ones((1, 3))
    onnx_rows = torch_to_onnx_gates(torch_rows)
    assert onnx_rows[:, 0].tolist() == [0, 0, 3, 3, 1, 1, 2, 2]  # i, o, f, g(=c)
    assert torch_to_onnx_gates(np.arange(8)).tolist() == [0, 1, 6, 7, 2, 3, 4, 5]  # biases


def test_permutation_matches_a_hand_computed_torch_step():
    torch.manual_seed(0)
    n_in, hidden = 3, 5
    lstm = torch.nn.LSTM(n_in, hidden)
    x = torch.randn(1, 1, n_in)
    h0, c0 = torch.randn(1, 1, hidden), torch.randn(1, 1, hidden)
    with torch.no_grad():
        _, (h1, c1) = lstm(x, (h0, c0))
    p = {k: v.detach().numpy().astype(np.float64) for k, v in lstm.state_dict().items()}
    h, c = onnx_spec_step(
        x[0].double().numpy(),
        h0[0].double().numpy(),
        c0[0].double().numpy(),
        torch_to_onnx_gates(p["weight_ih_l0"]),
        torch_to_onnx_gates(p["weight_hh_l0"]),
        torch_to_onnx_gates(p["bias_ih_l0"]),
        torch_to_onnx_gates(p["bias_hh_l0"]),
    )
    # float32 torch vs float64 numpy of the same formula: rounding only, ~1e-7.
    np.testing.assert_allclose(h, h1[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(c, c1[0].numpy(), atol=1e-6)
    # Without the permutation the same formula is wrong: the test can fail.
    h_wrong, _ = onnx_spec_step(
        x[0].double().numpy(),
        h0[0].double().numpy(),
        c0[0].double().numpy(),
        p["weight_ih_l0"],
        p["weight_hh_l0"],
        p["bias_ih_l0"],
        p["bias_hh_l0"],
    )
    assert np.abs(h_wrong - h1[0].numpy()).max() > 1e-2


def test_permutation_refuses_a_non_gate_axis():
    with pytest.raises(ValueError, match="multiple of 4"):
        torch_to_onnx_gates(np.zeros((6, 2)))


def test_onnx_to_torch_gates_inverts_the_export_permutation():
    from lstm_edge.exporters.onnx_export import onnx_to_torch_gates, torch_to_onnx_gates

    w = np.arange(4 * 3 * 2, dtype=np.float32).reshape(12, 2)
    np.testing.assert_array_equal(onnx_to_torch_gates(torch_to_onnx_gates(w)), w)
    # ONNX blocks i, o, f, c come back as torch's i, f, g(=c), o.
    i, o, f, c = np.split(w, 4)
    np.testing.assert_array_equal(onnx_to_torch_gates(w), np.concatenate([i, f, c, o]))
