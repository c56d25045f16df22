"""Figures for model cards: confusion matrix, per-class precision and recall, macro-F1, ECE (top-label and of
one score), AUROC, Dice, temperatures; per-fold means and sds of them."""

from __future__ import annotations

import numpy as np


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    matrix = np.zeros((classes, classes), int)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix  # rows: truth, columns: prediction


def per_class(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 per class (0 where undefined)."""
    hits = np.diag(matrix).astype(float)
    precision = np.divide(hits, matrix.sum(0), out=np.zeros_like(hits), where=matrix.sum(0) > 0)
    recall = np.divide(hits, matrix.sum(1), out=np.zeros_like(hits), where=matrix.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(hits),
                   where=(precision + recall) > 0)
    return precision, recall, f1


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins (Guo et al. 2017)."""
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    error = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties averaged."""
    positive = positive.astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def dice_and_iou(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    predicted, truth = predicted.astype(bool), truth.astype(bool)
    overlap, total = (predicted & truth).sum(), predicted.sum() + truth.sum()
    union = (predicted | truth).sum()
    return (2 * overlap / total if total else 1.0), (overlap / union if union else 1.0)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising the NLL of softmax(logits / T) (temperature scaling)."""
    import torch

    targets = torch.as_tensor(labels)
    return _fitted_temperature(logits, lambda scaled: torch.nn.functional.cross_entropy(scaled, targets))


def _fitted_temperature(logits: np.ndarray, nll) -> float:
    """The T minimising nll(logits / T), found by LBFGS on log T (so T stays positive)."""
    import torch

    values = torch.as_tensor(logits, dtype=torch.float64)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure():
        optimiser.zero_grad()
        loss = nll(values / log_t.exp())
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.detach().exp())


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = logits / temperature
    scaled = scaled - scaled.max(1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(1, keepdims=True)


def fold_figures(logits: np.ndarray, labels: np.ndarray, folds: np.ndarray, classes: tuple[str, ...],
                 temperature: float) -> dict:
    """Model-card figures: per-fold mean +/- sd of macro-F1, accuracy and ECE, pooled per-class figures."""
    per_fold = []
    for fold in range(int(folds.max()) + 1):
        held = folds == fold
        probabilities = softmax(logits[held], temperature)
        matrix = confusion(labels[held], probabilities.argmax(1), len(classes))
        precision, recall, f1 = per_class(matrix)
        per_fold.append({"macro_f1": f1.mean(), "accuracy": np.trace(matrix) / matrix.sum(),
                         "ece": expected_calibration_error(probabilities, labels[held]),
                         "recall": recall})
    probabilities = softmax(logits, temperature)
    matrix = confusion(labels, probabilities.argmax(1), len(classes))
    precision, recall, f1 = per_class(matrix)
    summary = {name: _mean_sd([f[name] for f in per_fold]) for name in ("macro_f1", "accuracy", "ece")}
    summary["recall_per_fold"] = {c: _mean_sd([f["recall"][i] for f in per_fold]) for i, c in enumerate(classes)}
    summary["pooled"] = {
        "confusion_matrix": {"rows_truth_columns_prediction": list(classes), "counts": matrix.tolist()},
        "precision": {c: round(float(v), 4) for c, v in zip(classes, precision)},
        "recall": {c: round(float(v), 4) for c, v in zip(classes, recall)},
        "f1": {c: round(float(v), 4) for c, v in zip(classes, f1)},
        "ece": round(expected_calibration_error(probabilities, labels), 4),
        "ece_before_calibration": round(expected_calibration_error(softmax(logits), labels), 4),
    }
    return summary


def _mean_sd(values) -> dict[str, float]:
    values = np.asarray(values, float)
    return {"mean": round(float(values.mean()), 4), "sd": round(float(values.std(ddof=1)), 4)}


def fit_binary_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T minimising the NLL of sigmoid(logits / T) (one score, binary labels)."""
    import torch

    targets = torch.as_tensor(labels, dtype=torch.float64)
    return _fitted_temperature(logits, lambda scaled: torch.nn.functional.binary_cross_entropy_with_logits(
        scaled, targets))


def binary_ece(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE of one score: |observed rate - mean score| over equal-width score bins, weighted by their size."""
    probabilities, labels = np.asarray(probabilities, float), np.asarray(labels, float)
    which = np.clip((probabilities * bins).astype(int), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(labels[inside].mean() - probabilities[inside].mean())
    return float(error)
