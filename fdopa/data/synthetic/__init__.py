"""The synthetic [18F]F-DOPA PET cohort generator: the embedded default data set."""

from fdopa.data.synthetic.generate import differing_options, generate_cohort
from fdopa.data.synthetic.synth_config import SynthConfig

__all__ = ["SynthConfig", "differing_options", "generate_cohort"]
