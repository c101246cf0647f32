"""The proof on a real embedded ISA: the int8 model's example, cross-compiled for the
Cortex-M4 board QEMU emulates (mps2-an386), runs a token stream under qemu-system-arm and
prints logits through semihosting; they are compared with the numpy reference and with the
same bundle built for the host. Skipped without the tools, except in CI (env CI set)."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_edge.exporters import c_codegen as cg

# Host and Cortex-M4 run the same C in the same order; only libm differs (glibc vs newlib
# expf, each within ~1 ulp), so logits agree to ~1e-6. 1e-4 leaves room for that while
# a miscompiled or misaligned build (wrong float ABI, unstarted .data) is off by O(1).
HOST_VS_M4_ATOL = 1e-4


@pytest.fixture(scope="module")
def m4_run(tiny, tmp_path_factory, require_tools):
    require_tools("cc", cg.ARM_CC, cg.QEMU_CMD[0])
    out = tmp_path_factory.mktemp("m4") / "bundle"
    report = cg.codegen(
        tiny.int8_path, out, cg.CodegenOptions(name="tiny", target="cortex-m4", steps=300,
                                               check=True),
    )  # fmt: skip
    return report, out


def test_elf_runs_under_qemu_and_matches_numpy(m4_run):
    report, out = m4_run
    assert report.binary == out / "tiny.elf"
    (check,) = report.checks
    assert check.runs_on == "cortex-m4 (qemu)" and check.against == "numpy"
    # Steps 0, 64, ..., 256 and the last (299) are printed.
    assert check.steps == 6
    assert check.passed, check.failures
    for section in (".isr_vector", ".text", ".data", ".bss"):
        assert section in report.sections
    # The model's const arrays are in flash (.text holds .rodata), not copied into RAM.
    assert report.sections[".text"] > report.footprint.weight_bytes
    assert report.sections[".data"] < report.footprint.weight_bytes


def test_qemu_logits_match_the_host_build(m4_run, tmp_path, tiny):
    _, out = m4_run
    vocab = tiny.config.vocab_size
    m4 = cg.run_qemu(out / "tiny.elf", vocab)
    host_exe = cg.build_host(out, "tiny", tmp_path / "tiny")
    host = cg.run_example([str(host_exe)], vocab, 60)
    assert sorted(m4.outputs) == sorted(host.outputs) == [0, 64, 128, 192, 256, 299]
    for step, logits in m4.outputs.items():
        np.testing.assert_allclose(logits, host.outputs[step], rtol=0, atol=HOST_VS_M4_ATOL)
    assert m4.top1 == host.top1
