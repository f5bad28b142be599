"""The PP-OCRv6 detection necks: RepLKFPN (tiny / small) and RepLKPAN (medium).

Both are the v4/v5 necks (RSEFPN, LKPAN) with their dense kxk convolutions replaced by a depth-wise large-kernel
:class:`DilatedReparamBlock` (UniRepLKNet, https://arxiv.org/abs/2311.15599) + a 1x1 conv:

* :class:`RepLKFPN` (``out_channels`` c, ``dilated_kernel_size`` 5 tiny / 7 small): ``ins_conv`` are RSEFPN's 1x1
  RSE layers; each ``inp_conv`` becomes ``inp_conv_dw`` (DilatedReparamBlock on c) -> ``inp_conv_pw`` (1x1,
  c -> c/4) -> ``x + inp_conv_se(x)`` (squeeze-excite, or ``se(x)`` without ``shortcut``).
* :class:`RepLKPAN` (c = 256, kernel 9, IntraCL blocks): LKPAN's eight 9x9 convs (``inp_conv``, ``pan_lat_conv``)
  become :class:`DilatedReparamConv` (DilatedReparamBlock -> 1x1 -> BatchNorm).

In training both return ``{"fuse": map, "aux_p4": out4, "aux_p3": out3, "aux_p2": out2}``: the top-down FPN sums
at strides 16 / 8 / 4 (c channels each), which the DB head's training-only auxiliary branches read (deep
supervision). In eval they return the fused map ``[N, c, H/4, W/4]`` only.

A DilatedReparamBlock sums a kxk depth-wise conv + BN and smaller *dilated* depth-wise convs + BN (kernel 7:
5x5 d1, 3x3 d2, 3x3 d3; 5: 3x3 d1, 3x3 d2; 9: 5x5 d1, 5x5 d2, 3x3 d3, 3x3 d4); ``rep()`` merges them into one
biased kxk conv (``reparam_conv``), :meth:`DilatedReparamBlock.unfuse` goes back.

Facts from PaddleOCR's ``ppocr/modeling/necks/db_fpn.py`` (RepLKFPN, RepLKPAN, DilatedReparamBlock); layouts
checked against ``../shared/fixtures/manifests/PP-OCRv6_*_det.json``.
"""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn as nn
from paddle import ParamAttr
from paddle.nn.initializer import KaimingUniform

from workbench.errors import ConfigError
from workbench.models.necks.lkpan import IntraCLBlock
from workbench.models.necks.rsefpn import RSELayer, SEModule
from workbench.models.ops import upsample_nearest

__all__ = ["DILATED_BRANCHES", "DilatedReparamBlock", "DilatedReparamConv", "RepLKFPN", "RepLKPAN"]

#: large kernel -> (kernel, dilation) of each dilated branch
DILATED_BRANCHES = {
    5: ((3, 1), (3, 2)),
    7: ((5, 1), (3, 2), (3, 3)),
    9: ((5, 1), (5, 2), (3, 3), (3, 4)),
    11: ((5, 1), (5, 2), (3, 3), (3, 4), (3, 5)),
    13: ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5)),
}


def _kaiming_conv(cin: int, cout: int, k: int = 1, stride: int = 1) -> nn.Conv2D:
    return nn.Conv2D(cin, cout, k, stride=stride, padding=k // 2, weight_attr=ParamAttr(initializer=KaimingUniform()),
                     bias_attr=False)


def _bn_scale_shift(bn) -> tuple[np.ndarray, np.ndarray]:
    scale = bn.weight.numpy().astype(np.float64) / np.sqrt(bn._variance.numpy().astype(np.float64) + bn._epsilon)
    return scale, bn.bias.numpy().astype(np.float64) - bn._mean.numpy().astype(np.float64) * scale


class DilatedReparamBlock(nn.Layer):
    """Depth-wise large-kernel conv with parallel dilated branches (module docstring)."""

    def __init__(self, channels: int, kernel_size: int = 7):
        super().__init__()
        if kernel_size not in DILATED_BRANCHES:
            raise ConfigError(f"DilatedReparamBlock: kernel_size {kernel_size} is not one of {sorted(DILATED_BRANCHES)}")
        self.channels = channels
        self.kernel_size = kernel_size
        self.branches = DILATED_BRANCHES[kernel_size]
        self.lk_origin = nn.Conv2D(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels,
                                   bias_attr=False)
        self.origin_bn = nn.BatchNorm2D(channels)
        for k, r in self.branches:
            span = r * (k - 1) + 1
            setattr(self, f"dil_conv_k{k}_{r}", nn.Conv2D(channels, channels, k, padding=span // 2, dilation=r,
                                                          groups=channels, bias_attr=False))
            setattr(self, f"dil_bn_k{k}_{r}", nn.BatchNorm2D(channels))
        self.is_repped = False

    def _branch_layers(self):
        for k, r in self.branches:
            yield k, r, getattr(self, f"dil_conv_k{k}_{r}"), getattr(self, f"dil_bn_k{k}_{r}")

    def forward(self, x):
        if self.is_repped:
            return self.reparam_conv(x)
        out = self.origin_bn(self.lk_origin(x))
        for _, _, conv, bn in self._branch_layers():
            out = out + bn(conv(x))
        return out

    def fused_kernel_bias(self) -> tuple[np.ndarray, np.ndarray]:
        """The single kxk kernel and bias of the eval-mode function (float64)."""
        scale, bias = _bn_scale_shift(self.origin_bn)
        kernel = self.lk_origin.weight.numpy().astype(np.float64) * scale[:, None, None, None]
        centre = self.kernel_size // 2
        for k, r, conv, bn in self._branch_layers():
            s, b = _bn_scale_shift(bn)
            w = conv.weight.numpy().astype(np.float64) * s[:, None, None, None]
            half = r * (k - 1) // 2
            # a dilated kxk kernel is a sparse (r(k-1)+1)^2 kernel: its taps land every r pixels around the centre
            kernel[:, :, centre - half:centre + half + 1:r, centre - half:centre + half + 1:r] += w
            bias = bias + b
        return kernel, bias

    @paddle.no_grad()
    def rep(self) -> None:
        if self.is_repped:
            return
        kernel, bias = self.fused_kernel_bias()
        self.reparam_conv = nn.Conv2D(self.channels, self.channels, self.kernel_size, padding=self.kernel_size // 2,
                                      groups=self.channels)
        self.reparam_conv.weight.set_value(kernel.astype(np.float32))
        self.reparam_conv.bias.set_value(bias.astype(np.float32))
        del self.lk_origin, self.origin_bn
        for k, r in self.branches:
            delattr(self, f"dil_conv_k{k}_{r}")
            delattr(self, f"dil_bn_k{k}_{r}")
        self.is_repped = True

    @paddle.no_grad()
    def unfuse(self, kernel: np.ndarray, bias: np.ndarray, **_) -> None:
        """Training form whose eval function is the conv ``(kernel, bias)``: the large kernel holds ``kernel``
        with an identity-affine BN carrying ``bias``; the dilated branches start at zero gain (BN scale and shift
        0: they add exactly 0 in train and eval mode, and their scale gets a gradient), keeping their fresh conv
        weights. Calibration then gives every BN real statistics without changing the function."""
        from workbench.models.rep import set_identity_affine

        if self.is_repped:
            raise ValueError("DilatedReparamBlock.unfuse needs the training form (the layer is fused)")
        expected = (self.channels, 1, self.kernel_size, self.kernel_size)
        kernel = np.asarray(kernel, dtype=np.float32)
        if kernel.shape != expected:
            raise ValueError(f"DilatedReparamBlock.unfuse: kernel {kernel.shape} does not fit {expected}")
        self.lk_origin.weight.set_value(kernel)
        set_identity_affine(self.origin_bn, np.asarray(bias, dtype=np.float64))
        for _, _, _, bn in self._branch_layers():
            zeros = np.zeros(self.channels, np.float32)
            bn.weight.set_value(zeros)
            bn.bias.set_value(zeros)
            bn._mean.set_value(zeros)
            bn._variance.set_value(np.ones(self.channels, np.float32))

    def calibration_batch_norms(self) -> list[nn.Layer]:
        return [self.origin_bn] + [bn for _, _, _, bn in self._branch_layers()]


class DilatedReparamConv(nn.Layer):
    """A dense kxk conv replaced by ``DilatedReparamBlock(in, k)`` (depth-wise) -> 1x1 (in -> out) -> BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 9):
        super().__init__()
        self.dw = DilatedReparamBlock(in_channels, kernel_size)
        self.pw = _kaiming_conv(in_channels, out_channels, 1)
        self.bn = nn.BatchNorm2D(out_channels)

    def forward(self, x):
        return self.bn(self.pw(self.dw(x)))


def _check_inputs(name: str, in_channels, out_channels: int) -> None:
    if len(in_channels) != 4:
        raise ConfigError(f"{name}: expects 4 backbone maps (strides 4..32), got in_channels={list(in_channels)}")
    if out_channels % 4:
        raise ConfigError(f"{name}: out_channels must be a multiple of 4, got {out_channels}")


def _top_down(ins_conv, features):
    c2, c3, c4, c5 = features
    in5 = ins_conv[3](c5)
    out4 = ins_conv[2](c4) + upsample_nearest(in5, 2)  # stride 16
    out3 = ins_conv[1](c3) + upsample_nearest(out4, 2)  # stride 8
    out2 = ins_conv[0](c2) + upsample_nearest(out3, 2)  # stride 4
    return in5, out4, out3, out2


def _output(training: bool, p5, p4, p3, p2, out4, out3, out2):
    fuse = paddle.concat([upsample_nearest(p5, 8), upsample_nearest(p4, 4), upsample_nearest(p3, 2), p2], axis=1)
    if training:
        return {"fuse": fuse, "aux_p4": out4, "aux_p3": out3, "aux_p2": out2}
    return fuse


class RepLKFPN(nn.Layer):
    """RSEFPN with large-kernel depth-wise ``inp_conv`` (module docstring)."""

    def __init__(self, in_channels: list[int], out_channels: int, dilated_kernel_size: int = 7, shortcut: bool = True):
        super().__init__()
        _check_inputs("RepLKFPN", in_channels, out_channels)
        self.out_channels = out_channels
        self.shortcut = shortcut
        quarter = out_channels // 4
        self.ins_conv = nn.LayerList()
        self.inp_conv_dw = nn.LayerList()
        self.inp_conv_pw = nn.LayerList()
        self.inp_conv_se = nn.LayerList()
        for cin in in_channels:
            self.ins_conv.append(RSELayer(cin, out_channels, 1, shortcut))
            self.inp_conv_dw.append(DilatedReparamBlock(out_channels, dilated_kernel_size))
            self.inp_conv_pw.append(_kaiming_conv(out_channels, quarter, 1))
            self.inp_conv_se.append(SEModule(quarter))

    def _inp(self, x, index: int):
        x = self.inp_conv_pw[index](self.inp_conv_dw[index](x))
        return x + self.inp_conv_se[index](x) if self.shortcut else self.inp_conv_se[index](x)

    def forward(self, features):
        in5, out4, out3, out2 = _top_down(self.ins_conv, features)
        p5, p4, p3, p2 = self._inp(in5, 3), self._inp(out4, 2), self._inp(out3, 1), self._inp(out2, 0)
        return _output(self.training, p5, p4, p3, p2, out4, out3, out2)


class RepLKPAN(nn.Layer):
    """LKPAN with :class:`DilatedReparamConv` in place of its 9x9 convs (module docstring)."""

    def __init__(self, in_channels: list[int], out_channels: int = 256, kernel_size: int = 9, intracl: bool = True):
        super().__init__()
        _check_inputs("RepLKPAN", in_channels, out_channels)
        self.out_channels = out_channels
        self.intracl = intracl
        quarter = out_channels // 4
        self.ins_conv = nn.LayerList()
        self.inp_conv = nn.LayerList()
        self.pan_head_conv = nn.LayerList()
        self.pan_lat_conv = nn.LayerList()
        for i, cin in enumerate(in_channels):  # interleaved creation per level, as upstream
            self.ins_conv.append(_kaiming_conv(cin, out_channels, 1))
            self.inp_conv.append(DilatedReparamConv(out_channels, quarter, kernel_size))
            if i > 0:
                self.pan_head_conv.append(_kaiming_conv(quarter, quarter, 3, stride=2))
            self.pan_lat_conv.append(DilatedReparamConv(quarter, quarter, kernel_size))
        if intracl:
            self.incl1 = IntraCLBlock(quarter, reduce_factor=2)
            self.incl2 = IntraCLBlock(quarter, reduce_factor=2)
            self.incl3 = IntraCLBlock(quarter, reduce_factor=2)
            self.incl4 = IntraCLBlock(quarter, reduce_factor=2)

    def forward(self, features):
        in5, out4, out3, out2 = _top_down(self.ins_conv, features)
        f5, f4, f3, f2 = self.inp_conv[3](in5), self.inp_conv[2](out4), self.inp_conv[1](out3), self.inp_conv[0](out2)
        pan3 = f3 + self.pan_head_conv[0](f2)
        pan4 = f4 + self.pan_head_conv[1](pan3)
        pan5 = f5 + self.pan_head_conv[2](pan4)
        p2, p3 = self.pan_lat_conv[0](f2), self.pan_lat_conv[1](pan3)
        p4, p5 = self.pan_lat_conv[2](pan4), self.pan_lat_conv[3](pan5)
        if self.intracl:
            p5, p4, p3, p2 = self.incl4(p5), self.incl3(p4), self.incl2(p3), self.incl1(p2)
        return _output(self.training, p5, p4, p3, p2, out4, out3, out2)
