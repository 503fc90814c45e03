"""``backbones train {fit,validate,test} --config FILE.yaml``: Lightning's CLI over the recipe.

Every field of the model, the data and the ``Trainer`` can be set in the YAML file or overridden on
the command line (``--model.lr 0.2 --trainer.devices 8``); see
:mod:`vision_backbones.train.lightning_cli`. Errors are one line on stderr (exit code 2 for a bad
config).
"""

from __future__ import annotations

import logging
import sys
import warnings

from vision_backbones.cli import run_command
from vision_backbones.train.lightning_cli import run_lightning_cli


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("vision_backbones").setLevel(logging.INFO)
    # `backbones train ...` passes its own argv on purpose; Lightning's warning about it is noise
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
    return run_command("backbones train", lambda: run_lightning_cli(argv))


if __name__ == "__main__":
    sys.exit(main())
