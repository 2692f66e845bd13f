"""The app layer, on top of the core and the three stages: the `trm-edge` CLI, `trm-edge demo`,
`trm-edge doctor`, and the PyTorch eager baseline the runtime is measured against.

The core (`trm_edge` outside this package) imports no stage; this package imports whatever it drives.
"""
