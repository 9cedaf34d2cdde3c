"""Train the scan CNN on an ImageSet; grouped cross-validation for honest estimates."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from medstream_training.augment import augmented_tensor, jitter
from medstream_training.images import ImageSet
from medstream_training.nets import ScanCNN
from worker.preprocess.scan import pixels_to_tensor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScanTrainConfig:
    """Hyper-parameters; the defaults train in well under a minute on 2 CPU cores."""

    epochs: int = 60
    batch_size: int = 16
    crops_per_image: int = 8
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0


def eval_tensors(images: list[np.ndarray]) -> torch.Tensor:
    """[N, 1, 128, 128] through exactly the worker's preprocessing, no augmentation."""
    return torch.from_numpy(np.stack([pixels_to_tensor(p) for p in images]))


def _class_weights(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
    return torch.tensor(weights, dtype=torch.float32)


class CropBank:
    """Up to `slots` augmented crops per image, made on first use and then reused.

    Each crop goes through the worker's `pixels_to_tensor`; reusing them bounds the cost of
    preprocessing large radiographs (tens of ms each) without leaving that function.
    """

    def __init__(self, images: list[np.ndarray], slots: int, rng: np.random.Generator) -> None:
        self.images, self.slots, self.rng = images, slots, rng
        self.bank: dict[tuple[int, int], np.ndarray] = {}

    def sample(self, index: int) -> np.ndarray:
        key = (index, int(self.rng.integers(self.slots)))
        if key not in self.bank:
            self.bank[key] = augmented_tensor(self.images[index], self.rng)
        return self.bank[key]


def train_scan(data: ImageSet, indices: np.ndarray, config: ScanTrainConfig) -> ScanCNN:
    """Train a fresh ScanCNN on data[indices] with augmentation and class-balanced sampling."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    n_classes = len(data.classes)
    model = ScanCNN(n_classes)
    labels = data.labels[indices]
    sample_p = _class_weights(labels, n_classes).numpy()[labels]
    sample_p = sample_p / sample_p.sum()
    steps_per_epoch = max(1, -(-indices.size // config.batch_size))
    steps = config.epochs * steps_per_epoch
    crops = CropBank(data.images, config.crops_per_image, rng)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=steps)
    model.train()
    for step in range(steps):
        chosen = rng.choice(indices.size, size=config.batch_size, p=sample_p)
        batch = torch.from_numpy(
            np.stack([crops.sample(int(indices[i])) for i in chosen])
        )
        target = torch.from_numpy(labels[chosen])
        loss = F.cross_entropy(model.logits(jitter(batch, rng)), target, label_smoothing=0.05)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if (step + 1) % (steps_per_epoch * 10) == 0:
            log.info("scan_cnn step %d/%d loss %.4f", step + 1, steps, loss.item())
    return model.eval()


def predict(model: ScanCNN, tensors: torch.Tensor) -> np.ndarray:
    """Class probabilities [N, C] for preprocessed tensors."""
    with torch.no_grad():
        return model(tensors).numpy()


def group_folds(groups: list[str], labels: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """k test-index folds; a group (patient) never spans folds; classes spread across folds."""
    rng = np.random.default_rng(seed)
    unique = sorted(set(groups))
    group_label = {g: int(labels[groups.index(g)]) for g in unique}
    order = sorted(unique, key=lambda g: (group_label[g], rng.random()))
    fold_of = {g: i % k for i, g in enumerate(order)}
    members = np.array([fold_of[g] for g in groups])
    return [np.flatnonzero(members == f) for f in range(k) if (members == f).any()]


def held_out(data: ImageSet, config: ScanTrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(test indices, probabilities) of a model trained on the source's own train split."""
    test = np.flatnonzero(np.array(data.split) == "test")
    model = train_scan(data, data.train_indices(), config)
    return test, predict(model, eval_tensors([data.images[i] for i in test]))


def cross_validate(data: ImageSet, config: ScanTrainConfig, k: int) -> np.ndarray:
    """Out-of-fold probabilities [N, C] from k grouped folds (each image predicted once)."""
    probs = np.zeros((len(data.images), len(data.classes)))
    everything = np.arange(len(data.images))
    tensors = eval_tensors(data.images)
    for fold, test in enumerate(group_folds(data.groups, data.labels, k, config.seed)):
        train = np.setdiff1d(everything, test)
        log.info("scan_cnn fold %d: %d train / %d test images", fold + 1, train.size, test.size)
        model = train_scan(data, train, config)
        probs[test] = predict(model, tensors[test])
    return probs
