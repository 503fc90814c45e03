"""The classifier head every family ends with: pool, optional hidden layer, dropout, linear."""

from __future__ import annotations

from torch import Tensor, nn


class ClassifierHead(nn.Module):
    """Global average pool, optional hidden layer, dropout, then a linear classifier ``fc``."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        hidden_channels: int | None = None,
        hidden_activation: type[nn.Module] = nn.ReLU,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}; use features_only=True for no head")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.hidden: nn.Module | None = None
        if hidden_channels is not None:
            self.hidden = nn.Sequential(nn.Linear(in_channels, hidden_channels), hidden_activation())
            in_channels = hidden_channels
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, num_classes)

    def pre_logits(self, x: Tensor) -> Tensor:
        x = self.pool(x).flatten(1)  # (B, C)
        if self.hidden is not None:
            x = self.hidden(x)
        return self.dropout(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pre_logits(x))
