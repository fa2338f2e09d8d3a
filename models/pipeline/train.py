"""Fine-tune MobileNetV2 (ImageNet start) on the leaf photos, in plain PyTorch on the CPU."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from appliance.vision.preprocess import InputSpec, resize_square

from .data import augment
from .mobilenetv2 import MobileNetV2


@dataclass
class TrainConfig:
    epochs: int = 6
    batch_size: int = 32
    lr_backbone: float = 3e-4
    lr_head: float = 3e-3
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    warmup_steps: int = 100
    max_steps: int | None = None  # smoke runs stop early
    crop_min: float = 0.3  # smallest random crop, as a share of the photo's area
    swap_p: float = 0.4  # chance a leaf is pasted onto another background
    leaf_scale_min: float = 1.0  # a pasted leaf is shrunk to between this and its full size
    field_light_p: float = 0.0  # chance of outdoor light (gamma, shadow gradient, colour cast)
    ema_decay: float = 0.0  # > 0: each epoch is scored (and kept) with an exponential moving average of the weights
    seed: int = 7
    threads: int = 2


def normalise_batch(rgb: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """(N,H,W,3) uint8 RGB to a normalised (N,3,H,W) float tensor; same arithmetic as to_tensor."""
    x = rgb.astype(np.float32) * (1.0 / 255.0)
    x -= np.asarray(spec.mean, dtype=np.float32)
    x /= np.asarray(spec.std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


@torch.no_grad()
def predict_logits(net: MobileNetV2, pixels: np.ndarray, spec: InputSpec, batch: int = 64) -> np.ndarray:
    net.eval()
    out = []
    for i in range(0, len(pixels), batch):
        views = np.stack([resize_square(p, spec.size) for p in pixels[i : i + batch]])
        x = normalise_batch(views, spec).contiguous(memory_format=torch.channels_last)
        out.append(net(x).numpy())
    return np.concatenate(out) if out else np.zeros((0, net.classifier.out_features), np.float32)


def train(
    net: MobileNetV2,
    pixels: np.ndarray,
    labels: np.ndarray,
    leaf: np.ndarray,
    scenes: np.ndarray | None,
    spec: InputSpec,
    cfg: TrainConfig,
    on_epoch: Callable[[int, MobileNetV2], float] | None = None,
    log: Callable[[str], None] = print,
    repeats: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """Train in place; returns the state of the epoch that ``on_epoch`` scored best (or the last).

    ``repeats``: how often each photo is seen per epoch (field photos more often than lab ones).
    """
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    net = net.to(memory_format=torch.channels_last)
    head = list(net.classifier.parameters())
    head_ids = {id(p) for p in head}
    body = [p for p in net.parameters() if id(p) not in head_ids]
    opt = torch.optim.AdamW(
        [{"params": body, "lr": cfg.lr_backbone}, {"params": head, "lr": cfg.lr_head}],
        weight_decay=cfg.weight_decay,
    )
    pool = np.repeat(np.arange(len(pixels)), repeats if repeats is not None else 1)
    steps_per_epoch = math.ceil(len(pool) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    base = [g["lr"] for g in opt.param_groups]
    best_score, best_state, step = -1.0, None, 0
    ema = {k: v.detach().clone() for k, v in net.state_dict().items()} if cfg.ema_decay > 0 else None
    for epoch in range(cfg.epochs):
        net.train()
        order = rng.permutation(pool)
        t0, seen, loss_sum = time.time(), 0, 0.0
        for i in range(0, len(order), cfg.batch_size):
            if step >= total:
                break
            idx = order[i : i + cfg.batch_size]
            views = np.stack(
                [
                    augment(
                        pixels[j],
                        rng,
                        spec.size,
                        bool(leaf[j]),
                        scenes,
                        cfg.crop_min,
                        cfg.swap_p,
                        cfg.leaf_scale_min,
                        cfg.field_light_p,
                    )
                    for j in idx
                ]
            )
            x = normalise_batch(views, spec).contiguous(memory_format=torch.channels_last)
            y = torch.from_numpy(labels[idx].astype(np.int64))
            warm = min(1.0, (step + 1) / cfg.warmup_steps)
            cosine = 0.5 * (1 + math.cos(math.pi * step / max(1, total)))
            for g, lr in zip(opt.param_groups, base, strict=True):
                g["lr"] = lr * warm * cosine
            loss = F.cross_entropy(net(x), y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                _update_average(ema, net, cfg.ema_decay)
            step += 1
            seen += len(idx)
            loss_sum += loss.item() * len(idx)
            if step % 20 == 0:
                rate = seen / (time.time() - t0)
                log(f"epoch {epoch + 1} step {step}/{total} loss {loss_sum / seen:.4f} {rate:.1f} img/s")
        live = {k: v.detach().clone() for k, v in net.state_dict().items()} if ema is not None else None
        if ema is not None:
            net.load_state_dict(ema)  # score what would ship: the averaged weights
        score = on_epoch(epoch, net) if on_epoch else float(epoch)
        log(f"epoch {epoch + 1} done in {time.time() - t0:.0f}s, loss {loss_sum / max(seen, 1):.4f}, score {score:.4f}")
        if score >= best_score:
            best_score = score
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        if live is not None:
            net.load_state_dict(live)  # training goes on from the live weights
        if step >= total:
            break
    assert best_state is not None
    net.load_state_dict(best_state)
    return best_state


@torch.no_grad()
def _update_average(average: dict[str, torch.Tensor], net: MobileNetV2, decay: float) -> None:
    """average <- decay * average + (1 - decay) * weights; counters (BatchNorm's) are copied."""
    for name, value in net.state_dict().items():
        if value.dtype.is_floating_point:
            average[name].mul_(decay).add_(value.detach(), alpha=1 - decay)
        else:
            average[name].copy_(value)
