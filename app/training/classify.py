"""Classifier recipe: ImageNet EfficientNet-Lite0, stage 7 and head fine-tuned on cached trunk features.

Five-fold cross-validation, stratified by class and grouped (near-duplicates and patients stay in one
fold), gives out-of-fold predictions for the model card; a temperature fitted on those calibrates the
final model, which is trained the same way on all the data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from app.training import metrics
from app.training.features import frozen_block_count, pretrained_classifier


@dataclass(frozen=True)
class Recipe:
    epochs: int = 12
    batch: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    label_smoothing: float = 0.0
    balance_classes: bool = True
    seed: int = 0


class TopOfNetwork(nn.Module):
    """The trainable part: the blocks after the frozen trunk, the head and the classifier."""

    def __init__(self, network) -> None:
        super().__init__()
        self.network = network
        self.first = frozen_block_count(network)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        net = self.network
        x = features
        for block in net._blocks[self.first:]:
            x = block(x)
        x = net._head_activation(net._bn1(net._conv_head(x))).mean(dim=(2, 3))
        return net._fc(net._dropout(x))


def train_top(features: np.ndarray, labels: np.ndarray, classes: int, recipe: Recipe, progress=None):
    """A full network whose trunk is ImageNet's and whose top learnt from `features` (N, 2, C, h, w)."""
    torch.manual_seed(recipe.seed)
    network = pretrained_classifier(classes)
    top = TopOfNetwork(network)
    trainable = [p for name, p in network.named_parameters()
                 if not name.startswith(("_conv_stem", "_bn0")) and not _in_trunk(name, top.first)]
    optimiser = torch.optim.AdamW(trainable, lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    steps = recipe.epochs * int(np.ceil(len(labels) / recipe.batch))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, recipe.learning_rate, total_steps=steps,
                                                   pct_start=0.15)
    weights = None
    if recipe.balance_classes:
        counts = np.bincount(labels, minlength=classes).astype(float)
        weights = torch.tensor(len(labels) / (classes * np.maximum(counts, 1)), dtype=torch.float32)
    loss_of = nn.CrossEntropyLoss(weight=weights, label_smoothing=recipe.label_smoothing)
    rng = np.random.default_rng(recipe.seed)
    top.train()
    for epoch in range(recipe.epochs):
        order = rng.permutation(len(labels))
        for start in range(0, len(order), recipe.batch):
            chosen = np.sort(order[start:start + recipe.batch])
            mirror = rng.integers(0, 2, len(chosen))
            batch = torch.from_numpy(np.asarray(features[chosen, mirror], np.float32))
            loss = loss_of(top(batch), torch.from_numpy(labels[chosen]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
        if progress:
            progress(epoch + 1, recipe.epochs)
    return network.eval()


def _in_trunk(name: str, first_trainable_block: int) -> bool:
    return name.startswith("_blocks.") and int(name.split(".")[1]) < first_trainable_block


def top_logits(network, features: np.ndarray) -> np.ndarray:
    """Logits for unmirrored features, in batches."""
    top = TopOfNetwork(network).eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(features), 64):
            out.append(top(torch.from_numpy(np.asarray(features[start:start + 64, 0], np.float32))).numpy())
    return np.concatenate(out)


def cross_validate(features: np.ndarray, labels: np.ndarray, folds: np.ndarray, classes: int, recipe: Recipe,
                   say=print) -> np.ndarray:
    """Out-of-fold logits for every sample."""
    logits = np.zeros((len(labels), classes), np.float32)
    for fold in range(int(folds.max()) + 1):
        start = time.perf_counter()
        train, held = folds != fold, folds == fold
        network = train_top(features[np.nonzero(train)[0]], labels[train], classes, recipe)
        logits[held] = top_logits(network, features[np.nonzero(held)[0]])
        accuracy = float((logits[held].argmax(1) == labels[held]).mean())
        say(f"  fold {fold + 1}: {held.sum()} held out, accuracy {accuracy:.3f} ({time.perf_counter() - start:.0f} s)")
    return logits


def fold_figures(logits: np.ndarray, labels: np.ndarray, folds: np.ndarray, classes: tuple[str, ...],
                 temperature: float) -> dict:
    """Model-card figures: per-fold mean +/- sd of macro-F1, accuracy and ECE, pooled per-class figures."""
    per_fold = []
    for fold in range(int(folds.max()) + 1):
        held = folds == fold
        probabilities = metrics.softmax(logits[held], temperature)
        matrix = metrics.confusion(labels[held], probabilities.argmax(1), len(classes))
        precision, recall, f1 = metrics.per_class(matrix)
        per_fold.append({"macro_f1": f1.mean(), "accuracy": np.trace(matrix) / matrix.sum(),
                         "ece": metrics.expected_calibration_error(probabilities, labels[held]),
                         "recall": recall})
    probabilities = metrics.softmax(logits, temperature)
    matrix = metrics.confusion(labels, probabilities.argmax(1), len(classes))
    precision, recall, f1 = metrics.per_class(matrix)
    summary = {name: _mean_sd([f[name] for f in per_fold]) for name in ("macro_f1", "accuracy", "ece")}
    summary["recall_per_fold"] = {c: _mean_sd([f["recall"][i] for f in per_fold]) for i, c in enumerate(classes)}
    summary["pooled"] = {
        "confusion_matrix": {"rows_truth_columns_prediction": list(classes), "counts": matrix.tolist()},
        "precision": {c: round(float(v), 4) for c, v in zip(classes, precision)},
        "recall": {c: round(float(v), 4) for c, v in zip(classes, recall)},
        "f1": {c: round(float(v), 4) for c, v in zip(classes, f1)},
        "ece": round(metrics.expected_calibration_error(probabilities, labels), 4),
        "ece_before_calibration": round(metrics.expected_calibration_error(metrics.softmax(logits), labels), 4),
    }
    return summary


def _mean_sd(values) -> dict[str, float]:
    values = np.asarray(values, float)
    return {"mean": round(float(values.mean()), 4), "sd": round(float(values.std(ddof=1)), 4)}


def pooled_head_features(network, features: np.ndarray) -> np.ndarray:
    """The pooled head activations (what the OOD guard looks at) for unmirrored cached trunk features."""
    net, first, out = network.eval(), frozen_block_count(network), []
    with torch.inference_mode():
        for start in range(0, len(features), 64):
            x = torch.from_numpy(np.asarray(features[start:start + 64, 0], np.float32))
            for block in net._blocks[first:]:
                x = block(x)
            out.append(net._head_activation(net._bn1(net._conv_head(x))).mean(dim=(2, 3)).numpy())
    return np.concatenate(out)
