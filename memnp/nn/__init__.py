"""Neural-network engine: layers with hand-written backward passes, memristive layers, loss,
optimiser, a sequential model with model files, and the paper's two architectures."""
from .architectures import cifar_cnn, mnist_mlp, synapse_count
from .activations import ReLU, Sigmoid, Softmax
from .base import Layer, PassContext, layer_from_config
from .layers import Conv2D, Dense, Flatten, MaxPool2D
from .losses import accuracy, cross_entropy_from_logits, cross_entropy_from_probabilities, log_softmax
from .memristive import MemristiveConv2D, MemristiveDense
from .ensemble import Ensemble
from .model import Sequential
from .optim import L1_GAMMA, SGD

__all__ = ["Layer", "Dense", "Conv2D", "MaxPool2D", "Flatten", "Sigmoid", "ReLU", "Softmax",
           "MemristiveDense", "MemristiveConv2D", "PassContext", "layer_from_config", "Sequential", "Ensemble",
           "SGD", "L1_GAMMA", "cross_entropy_from_logits", "cross_entropy_from_probabilities",
           "log_softmax", "accuracy", "mnist_mlp", "cifar_cnn", "synapse_count"]
