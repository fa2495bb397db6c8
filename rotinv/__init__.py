"""rotinv: is a CNN rotation invariant? LeNet-5 on rotated MNIST, measured and looked inside.

The package is plain PyTorch with no Streamlit import, so the CLI, the tests and the
app all run the same code.
"""

__version__ = "0.1.0"
