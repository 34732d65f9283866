"""The paper's two networks (docs/model.md §4), built and initialised from a Generator.

Initialisers: memristive standard weights N(0, 1/sqrt(n_in)) (standard deviation), biases 0;
double weights N(0.5, 1/sqrt(n_in)), biases 0.5; digital convolutions Glorot uniform, biases 0.
"""
from .activations import ReLU, Sigmoid, Softmax
from .layers import Conv2D, Flatten, MaxPool2D
from .memristive import MemristiveDense
from .model import Sequential


def mnist_mlp(rng, weights="standard", dtype="float32", hidden=25, **model_options):
    """MNIST: flatten 28 x 28 -> memristive dense 784 -> 25 -> sigmoid -> memristive dense 25 -> 10
    -> softmax. ``model_options`` go to :class:`Sequential` (stage, optimizer, l1, backend)."""
    layers = [Flatten(dtype=dtype), MemristiveDense(784, hidden, weights, dtype), Sigmoid(dtype=dtype),
              MemristiveDense(hidden, 10, weights, dtype), Softmax(dtype=dtype)]
    return Sequential(layers, input_shape=(28, 28), **model_options).initialize(rng)


def cifar_cnn(rng, weights="standard", dtype="float32", **model_options):
    """CIFAR-10: conv 3x3 32, ReLU -> max-pool 2x2 -> conv 3x3 64, ReLU -> max-pool 2x2 -> conv 3x3
    64, ReLU capped at 1 -> flatten (1024) -> memristive dense 1024 -> 25 -> sigmoid -> memristive
    dense 25 -> 10 -> softmax. Convolutions are digital, 'valid', stride 1."""
    layers = [Conv2D(3, 32, 3, dtype), ReLU(dtype=dtype), MaxPool2D(dtype=dtype),
              Conv2D(32, 64, 3, dtype), ReLU(dtype=dtype), MaxPool2D(dtype=dtype),
              Conv2D(64, 64, 3, dtype), ReLU(max_value=1.0, dtype=dtype), Flatten(dtype=dtype),
              MemristiveDense(1024, 25, weights, dtype), Sigmoid(dtype=dtype),
              MemristiveDense(25, 10, weights, dtype), Softmax(dtype=dtype)]
    return Sequential(layers, input_shape=(32, 32, 3), **model_options).initialize(rng)


def synapse_count(model):
    """N_syn = sum over memristive layers of (inputs + 1) x outputs (19,885 for 784-25-10)."""
    return sum((layer.n_rows + 1) * layer.n_out for layer in model.memristive_layers)
