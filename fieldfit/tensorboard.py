"""Optional TensorBoard logging of a run (``--tensorboard``; ``pip install tensorboard``): a
trainer hook that mirrors every record the trainer logs into ``OUT/tensorboard``."""

from __future__ import annotations

from pathlib import Path

from .errors import UserError


class TensorBoardHook:
    """Called after every step: writes the records the trainer logged since the last call
    (training terms under ``train/``, evaluations under ``eval/``, by step)."""

    def __init__(self, out: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("--tensorboard needs the tensorboard package: pip install "
                            "'fieldfit[tensorboard]'") from None
        self.writer = SummaryWriter(str(Path(out) / "tensorboard"))
        self.seen = 0
        self.trainer = None

    def __call__(self, trainer) -> None:
        self.trainer = trainer
        for record in trainer.history[self.seen:]:
            step = record["step"]
            for key, value in record.get("eval", record).items():
                if isinstance(value, int | float) and key not in ("step", "time"):
                    group = "eval" if "eval" in record else "train"
                    self.writer.add_scalar(f"{group}/{key}", value, step)
        self.seen = len(trainer.history)
        self.writer.flush()

    def close(self) -> None:
        """Write what the trainer logged after the last step (the final evaluation)."""
        if self.trainer is not None:
            self(self.trainer)
        self.writer.close()
