"""What the tables record about the machine: enough to tell why float results differ between two machines."""

from pathlib import Path

import torch

from qid.common.provenance import cpu_model, machine_description


def test_machine_description_names_the_cpu_model_and_the_kernels_torch_uses():
    text = machine_description()
    # the vector instruction set decides which CPU kernels torch runs, hence the floating-point summation order
    assert f"({torch.backends.cpu.get_cpu_capability()})" in text
    assert "cores" in text
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "model name" in cpuinfo.read_text():
        model = next(line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                     if line.startswith("model name"))
        assert cpu_model() == model and model in text
