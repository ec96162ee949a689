"""Import: the PyTorch network (and the heads' merge) into Relax, and its PyTorch reference."""
