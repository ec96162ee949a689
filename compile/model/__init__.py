"""The model zoo: LitePose in PyTorch (network, released configs, weights, exact deconv forms, MACs)."""
