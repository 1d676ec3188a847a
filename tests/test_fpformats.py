"""Floating-point formats (issue 23): grids and quantize–dequantize value for value against PyTorch's float8
dtypes, an exact spec-rule reference and torchao's MX/NVFP4 code; edge cases; GPTQ on a format's grid; bits
per weight; the methods inside quantize_model."""

import re
from bisect import bisect_left
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from transformers import GPTNeoXForCausalLM

from qid.measure import bitsperweight, blockformats, fpformats, quantize
from qid.measure.blockformats import FORMATS, format_quantize
from qid.measure.fpformats import E2M1, E4M3, E5M2, representable_magnitudes, round_to_format
from qid.measure.quantize import QuantizationError, gptq_format_quantize
from qid.suite.models import gpt_neox_config

TORCH_DTYPES = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}
_REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements.txt"
TORCHAO_PINNED = bool(re.search(r"^\s*torchao\b", _REQUIREMENTS.read_text(), re.MULTILINE))


@pytest.fixture(scope="module")
def torchao_mx():
    """torchao's MX/NVFP4 reference code. Once requirements.txt pins torchao these tests must run (an import
    error fails them); before that they skip, saying why."""
    if not TORCHAO_PINNED:
        pytest.importorskip("torchao.prototype.mx_formats.mx_tensor",
                            reason="torchao (the MX/NVFP4 reference) is not installed and not pinned in requirements.txt")
    from torchao.prototype.mx_formats import kernels, mx_tensor, nvfp4_tensor
    from torchao.prototype.mx_formats.config import ScaleCalculationMode

    return {"kernels": kernels, "mx": mx_tensor, "nvfp4": nvfp4_tensor, "FLOOR": ScaleCalculationMode.FLOOR}


# ------------------------------------------------------------------------------ exact spec-rule reference
def _codes(fmt):
    """(value, mantissa LSB) of every finite non-negative code, by the spec's formula."""
    out = []
    for e in range(2**fmt.exponent_bits):
        for m in range(2**fmt.mantissa_bits):
            frac = Fraction(m, 2**fmt.mantissa_bits)
            value = frac * Fraction(2) ** (1 - fmt.bias) if e == 0 else (1 + frac) * Fraction(2) ** (e - fmt.bias)
            if value <= Fraction(fmt.max_finite):
                out.append((value, m & 1))
    return sorted(out)


def _reference_round(values, fmt):
    """Nearest code in exact rational arithmetic, ties to the even mantissa, saturating at max_finite."""
    codes = _codes(fmt)
    grid = [value for value, _ in codes]
    result = []
    for x in values.tolist():
        magnitude = min(Fraction(abs(x)), Fraction(fmt.max_finite))
        i = bisect_left(grid, magnitude)
        candidates = [codes[j] for j in (i - 1, i) if 0 <= j < len(codes)]
        value, _ = min(candidates, key=lambda code: (abs(code[0] - magnitude), code[1]))
        result.append(float(value) if x >= 0 else -float(value))
    return torch.tensor(result, dtype=torch.float32)


def _probe_values(fmt, generator):
    """Every grid point, every midpoint between neighbours (the ties), one float32 ulp either side of each
    midpoint, log-uniform values from below the smallest subnormal to past the largest finite, zeros and
    out-of-range values; with both signs."""
    grid = representable_magnitudes(fmt).float()
    midpoints = (grid[1:] + grid[:-1]) / 2
    up = torch.nextafter(midpoints, torch.tensor(float("inf")))
    down = torch.nextafter(midpoints, torch.tensor(0.0))
    low, high = fmt.min_subnormal / 8, fmt.max_finite * 4
    spread = torch.exp(torch.empty(4000).uniform_(torch.log(torch.tensor(low)).item(), torch.log(torch.tensor(high)).item(),
                                                  generator=generator))
    extra = torch.tensor([0.0, fmt.max_finite, fmt.max_finite * 1.03, fmt.max_finite * 1e6, 3.0e38])
    values = torch.cat([grid, midpoints, up, down, spread, extra])
    return torch.cat([values, -values])


# ------------------------------------------------------------------------------------------------- grids
@pytest.mark.parametrize("fmt", [E4M3, E5M2], ids=lambda f: f.name)
def test_fp8_grids_are_pytorchs(fmt):
    every_code = torch.arange(256, dtype=torch.uint8).view(TORCH_DTYPES[fmt.name]).float()
    finite = every_code[torch.isfinite(every_code)]
    torch_grid = torch.unique(finite[finite >= 0]).double()
    assert torch.equal(representable_magnitudes(fmt), torch_grid)
    assert fmt.max_finite == torch.finfo(TORCH_DTYPES[fmt.name]).max
    assert 2.0 ** fmt.min_normal_exponent == torch.finfo(TORCH_DTYPES[fmt.name]).tiny
    assert fmt.min_subnormal == torch_grid[1].item()


def test_e2m1_grid_is_the_spec_table():
    assert representable_magnitudes(E2M1).tolist() == [0, 0.5, 1, 1.5, 2, 3, 4, 6]
    assert E2M1.max_exponent == 2 and E4M3.max_exponent == 8 and E5M2.max_exponent == 15


def test_e2m1_grid_is_torchaos(torchao_mx):
    kernels = torchao_mx["kernels"]
    every_code = kernels.f4_unpacked_to_f32(torch.arange(16, dtype=torch.uint8))
    assert torch.equal(torch.unique(every_code.abs()).double(), representable_magnitudes(E2M1))


# -------------------------------------------------------------------------------------- element rounding
@pytest.mark.parametrize("fmt", [E4M3, E5M2], ids=lambda f: f.name)
def test_fp8_rounding_matches_pytorchs_cast_value_for_value(fmt):
    values = _probe_values(fmt, torch.Generator().manual_seed(1))
    expected = values.clamp(-fmt.max_finite, fmt.max_finite).to(TORCH_DTYPES[fmt.name]).float()
    assert torch.equal(round_to_format(values, fmt), expected)


@pytest.mark.parametrize("fmt", [E4M3, E5M2, E2M1], ids=lambda f: f.name)
def test_rounding_matches_the_exact_spec_rule(fmt):
    values = _probe_values(fmt, torch.Generator().manual_seed(2))
    assert torch.equal(round_to_format(values, fmt), _reference_round(values, fmt))


def test_e2m1_rounding_matches_torchao(torchao_mx):
    kernels = torchao_mx["kernels"]
    values = _probe_values(E2M1, torch.Generator().manual_seed(3))
    expected = kernels.f4_unpacked_to_f32(kernels.f32_to_f4_unpacked(values.clamp(-6, 6)))
    assert torch.equal(round_to_format(values, E2M1), expected)


def test_ties_go_to_even_and_conversion_saturates():
    assert round_to_format(torch.tensor([0.25, 0.75, 2.5, 5.0, -5.0]), E2M1).tolist() == [0, 1, 2, 4, -4]
    assert round_to_format(torch.tensor([1.0625, 1.1875]), E4M3).tolist() == [1.0, 1.25]  # halfway: even mantissa
    special = torch.tensor([float("inf"), -float("inf"), 1e9, float("nan")])
    for fmt in (E4M3, E5M2, E2M1):
        out = round_to_format(special, fmt)
        assert out[:3].tolist() == [fmt.max_finite, -fmt.max_finite, fmt.max_finite] and out[3].isnan()
    # subnormals: E4M3's smallest is 2^-9; half of it is a tie that goes to zero, 3/4 of it rounds up
    tiny = 2.0**-9
    assert round_to_format(torch.tensor([tiny, tiny / 2, tiny * 0.75, tiny * 1.5]), E4M3).tolist() == [tiny, 0, tiny, 2 * tiny]


def test_e8m0_scale_rule():
    absmax = torch.tensor([6.0, 7.9, 8.0, 1.0, 0.0, 2.0**-140, 3.0e38])
    scales = fpformats.e8m0_floor_scale(absmax, E2M1)
    # X = 2^(floor(log2 absmax) − 2), clamped to E8M0's [2^-127, 2^127]
    assert scales.tolist() == [1.0, 1.0, 2.0, 0.25, 2.0**-127, 2.0**-127, 2.0**125]


# --------------------------------------------------------------------------------- block quantize–dequantize
def _weights(rows, columns, seed):
    """Gaussian weights with heavy-tailed outliers, rows spread over 2^±6, an all-zero block and an all-equal one."""
    generator = torch.Generator().manual_seed(seed)
    w = 0.02 * torch.randn(rows, columns, generator=generator)
    w += 0.2 * torch.randn(rows, columns, generator=generator) * (torch.rand(rows, columns, generator=generator) < 0.01)
    w *= 2.0 ** torch.randint(-6, 7, (rows, 1), generator=generator).float()
    w[0, :32] = 0.0
    w[1, 32:64] = 0.0375
    return w


@pytest.mark.parametrize("method,group_size", [("fp8", 128), ("fp8", -1), ("fp8-e5m2", 32), ("fp4", 64)])
def test_absmax_formats_match_pytorchs_float8_cast(method, group_size):
    w = _weights(16, 256, seed=4)
    fmt = FORMATS[method]
    group = w.shape[1] if group_size == -1 else group_size
    blocks = w.reshape(-1, group)
    scale = blocks.abs().amax(dim=1, keepdim=True) / fmt.element.max_finite
    inverse = torch.where(scale > 0, 1 / scale, torch.zeros_like(scale))
    scaled = (blocks * inverse).clamp(-fmt.element.max_finite, fmt.element.max_finite)
    if fmt.element.name in TORCH_DTYPES:
        rounded = scaled.to(TORCH_DTYPES[fmt.element.name]).float()
    else:
        rounded = _reference_round(scaled.flatten(), fmt.element).reshape(scaled.shape)
    assert torch.equal(format_quantize(w, method, group_size), (rounded * scale).reshape(w.shape))


@pytest.mark.parametrize("seed", [5, 6])
def test_mxfp4_matches_torchao_value_for_value(torchao_mx, seed):
    w = _weights(24, 256, seed)
    mx = torchao_mx["mx"]
    scale, data = mx.to_mx(w, torch.float4_e2m1fn_x2, 32, torchao_mx["FLOOR"])
    expected = mx.to_dtype(data, scale, torch.float4_e2m1fn_x2, 32, torch.float32)
    assert torch.equal(format_quantize(w, "mxfp4"), expected)


@pytest.mark.parametrize("seed", [7, 8])
def test_nvfp4_matches_torchao_value_for_value(torchao_mx, seed):
    w = _weights(24, 256, seed)
    nv = torchao_mx["nvfp4"]
    per_tensor = nv.per_tensor_amax_to_scale(w.abs().amax())
    expected = nv.NVFP4Tensor.to_nvfp4(w, per_tensor_scale=per_tensor).dequantize(torch.float32)
    ours = format_quantize(w, "nvfp4")
    assert torch.equal(blockformats.tensor_scale(w, FORMATS["nvfp4"]), per_tensor)
    # The one documented difference: blocks whose E4M3 scale is subnormal here (torchao clamps it up to 2^-6).
    # These weights' outliers and 2^±6 row scales produce a few such blocks; everything else is identical.
    block_absmax = w.reshape(24, -1, 16).abs().amax(dim=2)
    subnormal = round_to_format(block_absmax / 6 / per_tensor, E4M3) < 2.0**-6
    same = ~subnormal.repeat_interleave(16, dim=1)
    assert subnormal.any() and torch.equal(ours[same], expected[same])
    clean = w.clone()
    clean[subnormal.repeat_interleave(16, dim=1)] = 0  # without them the whole tensor matches
    expected = nv.NVFP4Tensor.to_nvfp4(clean, per_tensor_scale=per_tensor).dequantize(torch.float32)
    assert torch.equal(format_quantize(clean, "nvfp4"), expected)


def test_nvfp4_keeps_subnormal_e4m3_block_scales():
    """Documented choice: a block far below the tensor's absmax gets a subnormal E4M3 scale (NVIDIA's kernels),
    where torchao would clamp it up to 2^-6 and lose the block's resolution."""
    w = torch.zeros(1, 32)
    w[0, :16] = torch.linspace(-1, 1, 16)
    w[0, 16:] = torch.linspace(-1, 1, 16) * 3e-6  # absmax/s_tensor/6 = 3e-6·448 ≈ 2^-9.6: E4M3 subnormal range
    fmt = FORMATS["nvfp4"]
    scale, _ = blockformats.block_scales(w.reshape(2, 16).abs().amax(1, keepdim=True), fmt, blockformats.tensor_scale(w, fmt))
    stored = scale[1] / blockformats.tensor_scale(w, fmt)
    assert 0 < stored < 2.0**-6
    tiny = format_quantize(w, "nvfp4")[0, 16:]
    assert (tiny - w[0, 16:]).abs().max() <= 0.5 * w[0, 16:].abs().max()


def test_mxfp4_block_saturation_follows_the_spec():
    """All-equal blocks: 1.0 → X = 1/4, 4 exactly; 1.7 → X = 1/4, 6.8 clamps to 6 → 1.5 (the floor rule's clamp)."""
    w = torch.cat([torch.full((1, 32), 1.0), torch.full((1, 32), 1.7), torch.full((1, 32), -0.75)])
    assert format_quantize(w, "mxfp4")[:, 0].tolist() == [1.0, 1.5, -0.75]


@pytest.mark.parametrize("method", list(FORMATS))
def test_zero_blocks_zero_tensors_and_equal_blocks(method):
    w = _weights(8, 128, seed=9)
    out = format_quantize(w, method, 32)
    assert torch.isfinite(out).all()
    assert torch.equal(out[0, :32], torch.zeros(32))  # a block whose absmax is 0
    assert torch.equal(format_quantize(torch.zeros(4, 64), method, 32), torch.zeros(4, 64))
    equal = out[1, 32:64]
    assert torch.unique(equal).numel() == 1 and torch.allclose(equal, torch.tensor(0.0375), rtol=0.25)
    if method != "mxfp4":  # absmax scaling maps an all-equal block onto the element's largest value, up to
        # the rounding of NVFP4's E4M3 block scale (half a step: 2^-4 relative)
        assert torch.allclose(equal, torch.tensor(0.0375), rtol=2**-4 if method == "nvfp4" else 1e-6)


@pytest.mark.parametrize("method,columns", [("mxfp4", 40), ("nvfp4", 24), ("fp4", 100), ("fp8", 70)])
def test_rows_not_divisible_by_the_block_are_zero_padded(method, columns):
    w = _weights(6, 128, seed=10)[:, :columns]
    padded = torch.nn.functional.pad(w, (0, 128 - columns))
    assert torch.equal(format_quantize(w, method, 32), format_quantize(padded, method, 32)[:, :columns])


def test_bad_inputs_are_one_clear_error():
    w = torch.randn(4, 32)
    w[1, 3] = float("nan")
    with pytest.raises(QuantizationError, match="NaN/Inf"):
        format_quantize(w, "mxfp4")
    with pytest.raises(QuantizationError, match="2-D"):
        format_quantize(torch.randn(32), "nvfp4")
    with pytest.raises(QuantizationError, match="unknown floating-point format"):
        format_quantize(torch.randn(4, 32), "fp6")
    with pytest.raises(QuantizationError, match="4-bit format"):
        quantize.check_combination("mxfp4", 2)
    with pytest.raises(QuantizationError, match="act-order"):
        gptq_format_quantize(torch.randn(4, 64), torch.eye(64), "gptq-nvfp4", act_order=True)


def test_output_dtype_follows_the_input():
    w = _weights(4, 64, seed=11).bfloat16()
    assert format_quantize(w, "nvfp4").dtype == torch.bfloat16


# --------------------------------------------------------------------------------------------------- GPTQ
def _hessian(features, generator):
    latent = torch.randn(512, 8, generator=generator)
    x = latent @ torch.randn(8, features, generator=generator) + 0.1 * torch.randn(512, features, generator=generator)
    return x, 2 * x.T @ x / x.shape[0]


@pytest.mark.parametrize("method", ["fp8", "fp4", "mxfp4", "nvfp4"])
def test_gptq_with_uncorrelated_inputs_is_rtn_on_the_format(method):
    w = _weights(16, 128, seed=12)
    assert torch.equal(gptq_format_quantize(w, torch.eye(128), "gptq-" + method, 32), format_quantize(w, method, 32))


@pytest.mark.parametrize("method", ["fp4", "mxfp4", "nvfp4"])
def test_gptq_on_a_format_beats_rtn_and_stays_on_its_grid(method):
    generator = torch.Generator().manual_seed(13)
    x, hessian = _hessian(128, generator)
    w = 0.05 * torch.randn(32, 128, generator=generator)
    gptq = gptq_format_quantize(w, hessian, "gptq-" + method, 32)
    rtn = format_quantize(w, method, 32)
    error = lambda q: float((x @ (q - w).T).norm())  # noqa: E731
    assert error(gptq) < 0.8 * error(rtn)
    block = blockformats.effective_group_size(method, 32)
    levels = gptq.reshape(-1, block).sort(dim=1).values.diff(dim=1).ne(0).sum(dim=1) + 1
    assert int(levels.max()) <= 15  # E2M1 has 15 distinct values; each block one scale


# ------------------------------------------------------------------------------------------ bits per weight
def test_bits_per_weight_counts_scales_and_zeros():
    bpw = bitsperweight.bits_per_weight
    assert bpw("mxfp4", 4) == 4.25 and bpw("gptq-mxfp4", 4, -1) == 4.25
    assert bpw("nvfp4", 4) == 4.5 and bpw("nvfp4", 4, in_features=1024, out_features=1024) == 4.5 + 32 / 2**20
    assert bpw("rtn", 4, 128) == 4 + 20 / 128 and bpw("gptq", 3, 128, symmetric=True) == 3 + 16 / 128
    assert bpw("rtn", 4, -1, in_features=64) == 4 + 20 / 64
    assert bpw("fp8", 8, 128) == 8.125 and bpw("fp4", 4, 64) == 4.25 and bpw("bnb-nf4", 4, -1) == 4.5
    assert bpw("rtn", 16, 128) == 16.0
    assert bpw("rtn", 4, 128, in_features=200) == 4 + 2 * 20 / 200  # a partial group still stores a scale
    with pytest.raises(QuantizationError, match="in_features"):
        bpw("gptq", 4, -1)
    model = bitsperweight.model_bits_per_weight([(64, 32), (32, 64)], "rtn", 2, -1)
    assert model == pytest.approx(2 + (64 * 18 + 32 * 18) / (2 * 64 * 32))


def test_method_tables_agree():
    assert set(quantize.FORMAT_BITS) == set(FORMATS)
    for name, fmt in FORMATS.items():
        assert quantize.FORMAT_BITS[name] == fmt.element.bits and name in quantize.METHODS
        assert "gptq-" + name in quantize.CALIBRATED_METHODS and "gptq-" + name in quantize.METHODS
        assert quantize.method_format_bits(name) == quantize.method_format_bits("gptq-" + name) == fmt.element.bits
    assert quantize.method_format_bits("rtn") is None


# ----------------------------------------------------------------------------------------- quantize_model
def test_every_format_method_quantizes_only_the_blocks():
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(gpt_neox_config(2, 64, 4, vocab_size=128, context=32)).eval()
    names = set(quantize.quantizable_linears(model))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    calibration = torch.randint(0, 128, (4, 32), generator=torch.Generator().manual_seed(0))
    for method in quantize.METHODS:
        bits = quantize.method_format_bits(method)
        if bits is None:
            continue
        report = quantize.quantize_model(model, method, bits, group_size=32, calibration=calibration)
        assert report.layers_quantized == len(names)
        for name, parameter in model.named_parameters():
            inside = name.endswith(".weight") and name.removesuffix(".weight") in names
            assert (not torch.equal(parameter, before[name])) == inside, f"{method}: {name}"
        quantize.restore_weights(model, {n: before[n + ".weight"] for n in names})
