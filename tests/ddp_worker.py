"""torchrun entry of tests/test_train_ddp.py: `vantage train` with every part in eval mode.

Eval mode (running batch-norm statistics, no dropout) removes the two things that
differ by design between one process and several, so the runs can be compared exactly.
"""

import sys

from torch import nn

from vantage.cli import main
from vantage.train import trainer


def eval_modes(model: nn.Module, phase: trainer.Phase) -> None:
    """`trainer._set_modes` without batch statistics or dropout."""
    model.eval()


if __name__ == "__main__":
    trainer._set_modes = eval_modes
    sys.exit(main(sys.argv[1:]))
