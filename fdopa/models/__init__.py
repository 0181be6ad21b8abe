"""Networks, LightningModules, losses, transfer learning and inference."""
