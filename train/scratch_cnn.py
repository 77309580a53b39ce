"""The from-scratch CNN of the image-graphics paper (Eberts & Ulges, Sec. 3, Fig. 2): the domain-drift baseline.

Four 5×5 convolutions with 20/50/100/150 filters, each followed by ReLU and 2×2
max-pooling, then two fully connected layers; the last one "performs plain linear
regression" of the camera position (POSE.md: C/d, `regress`), trained with the
paper's squared Euclidean loss L(c, c') = ‖c − c'‖² to the unit target and
normalised onto the unit sphere at prediction (`forward`). Training the normalised
output instead stalled longer at the constant mean direction in our runs. It
predicts neither a category nor the in-plane rotation, so it is measured by the
camera-position error (the paper's angle E(c, c')) beside the transfer models, not
exported as a bundle.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FILTERS = (20, 50, 100, 150)


class ScratchCNN(nn.Module):
    """conv(5×5)+ReLU+maxpool ×4 → FC(hidden)+ReLU+dropout → FC(3), output normalised to unit length."""

    def __init__(self, input_size: int = 64, hidden: int = 512, dropout: float = 0.5) -> None:
        super().__init__()
        layers, ch = [], 3
        for f in FILTERS:
            layers += [nn.Conv2d(ch, f, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)]
            ch = f
        self.conv = nn.Sequential(*layers)
        side = input_size // 2 ** len(FILTERS)
        if side < 1:
            raise ValueError(f"input_size {input_size} is too small for {len(FILTERS)} poolings")
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(ch * side * side, hidden), nn.ReLU(), nn.Dropout(dropout),
                                nn.Linear(hidden, 3))

    def regress(self, image: torch.Tensor) -> torch.Tensor:
        """Normalised crops (N, 3, S, S) → the last layer's linear regression of the camera position (N, 3)."""
        return self.fc(self.conv(image))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Normalised crops (N, 3, S, S) → unit camera positions (N, 3)."""
        return F.normalize(self.regress(image), dim=1)


def camera_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distance to the unit camera positions `target` (image-graphics paper, Sec. 3)."""
    return ((pred - target) ** 2).sum(1).mean()
