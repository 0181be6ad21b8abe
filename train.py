"""Train a model: `python train.py +experiment=NAME [key=value …]` (NAME: conf/experiment/).

The same as ``fdopa train …`` (:mod:`fdopa.cli.train`): Hydra composes ``conf/train.yaml`` and
the overrides, the config is checked before the slow imports, and :func:`fdopa.pipeline.train`
does the work and returns the optimised metric (for sweepers). A bad override, config key or
input path is one line on stderr and exit status 2, Ctrl-C exit status 130; ``-v`` or
``HYDRA_FULL_ERROR=1`` shows the traceback.
"""

import sys

from fdopa.cli.train import train_cli

if __name__ == "__main__":
    sys.exit(train_cli(prog="train.py"))
