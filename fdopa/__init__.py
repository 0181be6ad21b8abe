"""fdopa: automatic [18F]F-DOPA PET analysis of paediatric gliomas."""

__version__ = "0.1.0"
