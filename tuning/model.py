"""Traffic predictors small enough to train on two CPU cores, in two families.

Both see, for every sample, the past ``len_source`` scaled values of one sensor (with
cyclic time features when timestamps are known) and predict its next ``len_target``
values. Weights are shared across sensors, so each model also gets learned
embeddings that tell it *which* sensor and *when*: a vector per sensor, per
time-of-day slot and per day of week (Shao et al., "Spatial-Temporal Identity",
CIKM 2022). Without them, one set of shared weights cannot tell a sensor that
jams every morning from one that never does.

- ``mlp`` (the default): STID-style. The flattened input window is projected to
  ``hidden_size``, joined with the embeddings, then ``num_layers`` residual MLP
  blocks; one linear head emits all ``len_target`` steps at once.
- ``rnn``: an encoder-decoder LSTM/GRU whose every step also gets the embeddings.

Both predict the change from the last observed value: a model with all-zero
output is copy-last, the baseline every traffic model must beat, and the residual
is small and centred, which trains faster than the level itself.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tuning.config import TrainConfig
from tuning.data import DataShape


class Embeddings(nn.Module):
    """Sensor, time-of-day and day-of-week embeddings; any of them may be off (size 0).

    Args:
        shape: the data's sizes (sensors, time-of-day slots; no slots = no calendar).
        node_dim, tod_dim, dow_dim: embedding sizes.
    """

    def __init__(self, shape: DataShape, node_dim: int, tod_dim: int, dow_dim: int) -> None:
        super().__init__()
        calendar = shape.steps_per_day > 0
        self.node = nn.Embedding(shape.num_sensors, node_dim) if node_dim > 0 else None
        self.tod = nn.Embedding(shape.steps_per_day, tod_dim) if tod_dim > 0 and calendar else None
        self.dow = nn.Embedding(7, dow_dim) if dow_dim > 0 and calendar and shape.days_of_week == 7 else None
        for table in (self.node, self.tod, self.dow):
            if table is not None:
                nn.init.xavier_uniform_(table.weight)  # STID's init: small, balanced across sizes
        self.static_dim = node_dim if self.node is not None else 0
        self.calendar_dim = (tod_dim if self.tod is not None else 0) + (dow_dim if self.dow is not None else 0)

    @property
    def dim(self) -> int:
        return self.static_dim + self.calendar_dim

    def forward(self, sensor: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor) -> torch.Tensor:
        """Embeddings per step.

        Args:
            sensor: (B,) sensor index.
            tod, dow: (B, S) calendar indices of S steps.

        Returns:
            (B, S, dim): the sensor vector repeated over the steps, then each step's calendar vectors.
        """
        parts = []
        steps = tod.shape[1]
        if self.node is not None:
            parts.append(self.node(sensor).unsqueeze(1).expand(-1, steps, -1))
        if self.tod is not None:
            parts.append(self.tod(tod))
        if self.dow is not None:
            parts.append(self.dow(dow))
        if not parts:
            return tod.new_zeros((tod.shape[0], steps, 0), dtype=torch.float32)
        return torch.cat(parts, dim=-1)


class ResidualBlock(nn.Module):
    """STID's encoder layer: x + fc(dropout(relu(fc(x))))."""

    def __init__(self, width: int, dropout_rate: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.act = nn.ReLU()
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.dropout(self.act(self.fc1(x))))


class MLPForecaster(nn.Module):
    """STID-style MLP: flattened window + embeddings, residual blocks, all steps at once.

    The calendar embeddings are those of the last input step (as in STID): the
    target steps follow it at known offsets, so one slot places the whole window.
    """

    def __init__(
        self, shape: DataShape, len_source: int, len_target: int, hidden_size: int, num_layers: int, dropout_rate: float,
        node_dim: int, tod_dim: int, dow_dim: int,
    ) -> None:  # fmt: skip
        super().__init__()
        self.len_source = len_source
        self.embeddings = Embeddings(shape, node_dim, tod_dim, dow_dim)
        self.window = nn.Linear(len_source * shape.input_size, hidden_size)
        self.joint = nn.Linear(hidden_size + self.embeddings.dim, hidden_size)
        self.blocks = nn.Sequential(*(ResidualBlock(hidden_size, dropout_rate) for _ in range(num_layers)))
        self.head = nn.Linear(hidden_size, len_target)

    def forward(
        self, x: torch.Tensor, future: torch.Tensor, sensor: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor
    ) -> torch.Tensor:
        """(B, len_source, input_size) window -> (B, len_target) scaled predictions."""
        last = self.len_source - 1
        emb = self.embeddings(sensor, tod[:, last : last + 1], dow[:, last : last + 1]).squeeze(1)  # (B, E)
        h = torch.cat([self.window(x.flatten(1)), emb], dim=-1)
        h = self.blocks(self.joint(h))
        return x[:, -1, :1] + self.head(h)


class RNNForecaster(nn.Module):
    """Encoder-decoder RNN (LSTM or GRU); every step's input carries the embeddings.

    The encoder is one fused ``nn.LSTM``/``nn.GRU`` call over the past steps; the
    decoder is a stack of ``LSTMCell``/``GRUCell``, since it must run one step at a
    time anyway, and single-step cells train about 20 % faster on a CPU than
    single-step calls of the fused layer. The decoder rolls out on its own
    predictions, never on the truth, so training and inference are the same.
    """

    def __init__(
        self, shape: DataShape, len_source: int, len_target: int, hidden_size: int, num_layers: int, dropout_rate: float,
        cell: str, node_dim: int, tod_dim: int, dow_dim: int,
    ) -> None:  # fmt: skip
        super().__init__()
        rnn, rnn_cell = {"lstm": (nn.LSTM, nn.LSTMCell), "gru": (nn.GRU, nn.GRUCell)}[cell]
        self.is_lstm = cell == "lstm"
        self.len_source, self.len_target = len_source, len_target
        self.embeddings = Embeddings(shape, node_dim, tod_dim, dow_dim)
        step_size = shape.input_size + self.embeddings.dim
        inter_layer = dropout_rate if num_layers > 1 else 0.0
        self.encoder = rnn(step_size, hidden_size, num_layers, batch_first=True, dropout=inter_layer)
        self.decoder = nn.ModuleList(rnn_cell(step_size if i == 0 else hidden_size, hidden_size) for i in range(num_layers))
        self.inter_layer_dropout = nn.Dropout(inter_layer)
        self.dropout = nn.Dropout(dropout_rate)
        self.head = nn.Linear(hidden_size, 1)

    def forward(
        self, x: torch.Tensor, future: torch.Tensor, sensor: torch.Tensor, tod: torch.Tensor, dow: torch.Tensor
    ) -> torch.Tensor:
        """Predict the next steps.

        Args:
            x: (B, len_source, input_size) past values and their time features.
            future: (B, len_target, input_size - 1) time features of the target steps.
            sensor: (B,) sensor index; tod, dow: (B, len_source + len_target) calendar indices.

        Returns:
            (B, len_target) predictions in scaled units.
        """
        emb = self.embeddings(sensor, tod, dow)  # (B, Ls + Lt, E)
        _, state = self.encoder(torch.cat([x, emb[:, : self.len_source]], dim=-1))
        # per layer: (B, H) hidden (and cell) state handed from encoder to decoder
        hidden = list(state[0].unbind(0)) if self.is_lstm else list(state.unbind(0))
        memory = list(state[1].unbind(0)) if self.is_lstm else []
        last = len(self.decoder) - 1
        prev = x[:, -1, :1]  # (B, 1): the last observed value starts the roll-out
        outputs = []
        for step in range(self.len_target):
            inp = torch.cat([prev, future[:, step], emb[:, self.len_source + step]], dim=-1)  # (B, step_size)
            for i, layer in enumerate(self.decoder):
                if self.is_lstm:
                    hidden[i], memory[i] = layer(inp, (hidden[i], memory[i]))
                else:
                    hidden[i] = layer(inp, hidden[i])
                inp = hidden[i] if i == last else self.inter_layer_dropout(hidden[i])
            prev = prev + self.head(self.dropout(inp))
            outputs.append(prev)
        return torch.cat(outputs, dim=1)


def build_model(config: TrainConfig, shape: DataShape) -> nn.Module:
    """Construct the model a :class:`~tuning.config.TrainConfig` describes for data of ``shape``."""
    common: dict[str, Any] = {
        "shape": shape, "len_source": config.len_source, "len_target": config.len_target,
        "hidden_size": config.hidden_size, "num_layers": config.num_layers, "dropout_rate": config.dropout_rate,
        "node_dim": config.node_embedding_dim, "tod_dim": config.tod_embedding_dim, "dow_dim": config.dow_embedding_dim,
    }  # fmt: skip
    if config.model == "mlp":
        return MLPForecaster(**common)
    return RNNForecaster(**common, cell=config.cell)


Seq2Seq = RNNForecaster
"""The round-1 name of the RNN family."""
