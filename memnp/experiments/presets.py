"""Run scales: ``tiny`` (seconds, for tests), ``default`` (minutes on 2 cores) and ``paper`` (docs/model.md §5).

A :class:`Scale` says how many networks per training setup, how many epochs, how often and how
many times the validation and test sets are evaluated during training, how many inference repeats,
and optionally how many examples of each split to use. It builds the Training and Inference
configs of the registry's setups.
"""
import dataclasses

from .configs import SAMPLING, DataSpec, Inference, Training, _choice, _float, _int, _optional_int


@dataclasses.dataclass(frozen=True)
class Scale:
    """How big a run is. ``mnist_limits`` / ``cifar_limits``: (train, validation, test) example
    counts (None: the whole split)."""

    name: str
    epochs: int
    networks: int
    inference_repeats: int
    validation_every: int
    validation_repeats: int
    test_every: int
    test_repeats: int
    mnist_limits: tuple = (None, None, None)
    cifar_limits: tuple = (None, None, None)
    sampling: str = "batch"
    learning_rate: float = 0.01

    def __post_init__(self):
        for name in ("epochs", "networks", "inference_repeats", "validation_every", "validation_repeats",
                     "test_every", "test_repeats"):
            object.__setattr__(self, name, _int(name, getattr(self, name), 1))
        for name in ("mnist_limits", "cifar_limits"):
            limits = tuple(getattr(self, name))
            if len(limits) != 3:
                raise ValueError(f"{name} must be (train, validation, test); got {limits!r}")
            object.__setattr__(self, name, tuple(_optional_int(f"{name} entry", v, 1) for v in limits))
        _choice("sampling", self.sampling, SAMPLING)
        object.__setattr__(self, "learning_rate", _float("learning_rate", self.learning_rate, 0, True))

    def limits(self, family):
        train, validation, test = self.cifar_limits if family == "cifar10" else self.mnist_limits
        return {"train": train, "validation": validation, "test": test}

    def training(self, data, stage, **fields):
        if not isinstance(data, DataSpec):
            raise ValueError("data must be a DataSpec")
        return Training(data=data, stage=stage, epochs=self.epochs,
                        validation_every=self.validation_every, validation_repeats=self.validation_repeats,
                        test_every=self.test_every, test_repeats=self.test_repeats,
                        test_sampling=self.sampling, learning_rate=self.learning_rate, **fields)

    def inference(self, stage):
        return Inference(stage=stage, repeats=self.inference_repeats, sampling=self.sampling)

    def override(self, epochs=None, repeats=None, networks=None, sampling=None, learning_rate=None):
        """A copy with the CLI's --epochs / --repeats / --networks / --sampling / --learning-rate
        applied. --repeats sets the inference repeats and caps the validation and test repeats
        during training."""
        changes = {}
        if learning_rate is not None:
            changes["learning_rate"] = learning_rate
        if epochs is not None:
            changes["epochs"] = epochs
        if repeats is not None:
            changes["inference_repeats"] = repeats
            changes["validation_repeats"] = min(self.validation_repeats, _int("repeats", repeats, 1))
            changes["test_repeats"] = min(self.test_repeats, repeats)
        if networks is not None:
            changes["networks"] = networks
        if sampling is not None:
            changes["sampling"] = sampling
        return dataclasses.replace(self, **changes) if changes else self

    def to_dict(self):
        return dataclasses.asdict(self)


PRESETS = {
    # Seconds: a few batches per epoch, for tests and smoke runs.
    "tiny": Scale("tiny", epochs=2, networks=1, inference_repeats=2, validation_every=1,
                  validation_repeats=2, test_every=2, test_repeats=1,
                  mnist_limits=(256, 128, 200), cifar_limits=(128, 64, 100)),
    # Minutes on 2 cores: every MNIST simulation on (a part of) the data.
    # SGD at learning rate 0.3 instead of the paper's 0.01, so that 150 epochs on the 6,400
    # training digits get far enough for the paper's orderings to show.
    "default": Scale("default", epochs=150, networks=1, inference_repeats=5, validation_every=10,
                     validation_repeats=3, test_every=20, test_repeats=2,
                     mnist_limits=(6400, 1600, 2000), cifar_limits=(4000, 1000, 1000), learning_rate=0.3),
    # docs/model.md §5.
    "paper": Scale("paper", epochs=1000, networks=5, inference_repeats=25, validation_every=20,
                   validation_repeats=20, test_every=20, test_repeats=20),
}


def get(name):
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}; got {name!r}")
    return PRESETS[name]
