"""The lecture's application: real MNIST, training (the `python -m
mlpbench.train` CLI), the studies of `python -m mlpbench.experiments`, and
their figures. Needs the `lecture` extra (torchvision, matplotlib, tqdm)."""
