"""Configs of one training run and one inference setup (docs/model.md §5), as frozen, validated dataclasses.

Every config has ``to_dict`` / ``from_dict`` and ``to_json`` / ``from_json``; the dict form is
plain JSON (no NumPy types), and its canonical serialisation (:func:`canonical_json`) is what job
keys are hashed from, so two configs that compare equal always give the same key.

- :class:`DataSpec`: which data set (the resolved source: ``"mnist"``, ``"mnist-10k"`` (the embedded
  subset), ``"fashion-mnist"`` or ``"cifar10"``) and optionally how many examples of each split to use
  (the first N, for quick runs).
- :class:`Inference`: a stage, how many repeats of the test set, the sampling mode and batch size.
- :class:`Training`: one network's training: data, stage, weights, regularisation, optimiser
  settings, epochs, checkpointing and the test-during-training setups.
"""
import dataclasses
import json
import math

from ..crossbar import Stage

#: ``batch``: fresh nonideality draws for every batch (the paper); ``chip``: one set of draws per
#: repeat, held for the whole test pass (a programmed chip).
SAMPLING = ("batch", "chip")
#: ``auto``: standard checkpoint (best validation accuracy every epoch) for an ideal training stage,
#: memristive validation (best median accuracy over repeats) for a nonideal one.
CHECKPOINTS = ("auto", "standard", "memristive")
DATASETS = ("mnist", "mnist-10k", "fashion-mnist", "cifar10")
AUGMENT = ("auto", "none", "translate-flip")


def canonical_json(obj):
    """Compact JSON with sorted keys and no NaN: the form job keys are hashed from."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _int(name, value, minimum, maximum=None):
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ValueError(f"{name} must be an integer {bound}; got {value!r}")
    return value


def _optional_int(name, value, minimum):
    return None if value is None else _int(name, value, minimum)


def _float(name, value, minimum, strict):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < minimum or (strict and number == minimum):
        op = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {op} {minimum}; got {value!r}")
    return number


def _choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _bool(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false; got {value!r}")
    return value


def _stage(name, value):
    if isinstance(value, Stage):
        return value
    if isinstance(value, dict):
        try:
            return Stage.from_dict(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: {exc}") from None
    raise ValueError(f"{name} must be a Stage or a stage dict; got {type(value).__name__}")


def _from_dict(cls, data, converters=None):
    if not isinstance(data, dict):
        raise ValueError(f"a {cls.__name__} config must be a JSON object; got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {', '.join(unknown)} "
                         f"(allowed: {', '.join(sorted(names))})")
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise ValueError(f"a {cls.__name__} config needs the fields {', '.join(required)}; "
                         f"missing: {', '.join(missing)}")
    fields = dict(data)
    for key, convert in (converters or {}).items():
        if key in fields:
            fields[key] = convert(fields[key])
    return cls(**fields)


class _JSON:
    def to_json(self, indent=None):
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{cls.__name__} config is not valid JSON: {exc}") from None
        return cls.from_dict(data)


@dataclasses.dataclass(frozen=True)
class DataSpec(_JSON):
    """A data set and how much of it to use.

    name: the data source actually used (``mnist-10k`` is the embedded subset, 6,400 / 1,600 /
    2,000). train / validation / test: use only the first N examples of that split (None: all).
    """

    name: str = "mnist"
    train: int = None
    validation: int = None
    test: int = None

    def __post_init__(self):
        _choice("data name", self.name, DATASETS)
        for split in ("train", "validation", "test"):
            object.__setattr__(self, split, _optional_int(f"data {split} (examples)", getattr(self, split), 1))

    @property
    def family(self):
        """``mnist`` for the MNIST-shaped sets (28 x 28 grey), ``cifar10`` otherwise."""
        return "cifar10" if self.name == "cifar10" else "mnist"

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        return _from_dict(cls, data)


@dataclasses.dataclass(frozen=True)
class Inference(_JSON):
    """One inference setup: a stage, ``repeats`` passes over the test set, the sampling mode
    (``batch`` or ``chip``, see :data:`SAMPLING`) and the test batch size (100 in the paper).
    ``test_examples``: use only the first N examples of the test set the network's data gives
    (None: all of it; for setups whose reads are expensive, such as line resistance)."""

    stage: Stage
    repeats: int = 25
    sampling: str = "batch"
    batch_size: int = 100
    test_examples: int = None

    def __post_init__(self):
        object.__setattr__(self, "stage", _stage("inference stage", self.stage))
        object.__setattr__(self, "repeats", _int("inference repeats", self.repeats, 1))
        _choice("sampling", self.sampling, SAMPLING)
        object.__setattr__(self, "batch_size", _int("inference batch_size", self.batch_size, 1))
        object.__setattr__(self, "test_examples", _optional_int("inference test_examples", self.test_examples, 1))

    def to_dict(self):
        out = {"stage": self.stage.to_dict(), "repeats": self.repeats, "sampling": self.sampling,
               "batch_size": self.batch_size}
        if self.test_examples is not None:  # left out when unset: the paper's configs (and keys) as before
            out["test_examples"] = self.test_examples
        return out

    @classmethod
    def from_dict(cls, data):
        return _from_dict(cls, data)


@dataclasses.dataclass(frozen=True)
class Training(_JSON):
    """The training of one network (docs/model.md §4-5).

    data: DataSpec. stage: the training Stage. regularised: add 1e-4 x sum |theta| (``l1``) over
    the memristive layers. standard_weights: force standard (signed) weights even under
    nonidealities (otherwise a nonideal stage trains double weights). epochs, batch_size (64),
    learning_rate (SGD, 0.01). checkpoint: see :data:`CHECKPOINTS`. validation_every /
    validation_repeats: memristive validation after epoch 1 and every k epochs, r repeats.
    test_every / test_repeats / test_stages: the test set evaluated under each stage in
    ``test_stages`` after epoch 1 and every k epochs, r repeats (empty: no test-during-training).
    augment: ``auto`` (translate-flip for CIFAR-10, none otherwise), ``none`` or ``translate-flip``.
    """

    data: DataSpec
    stage: Stage
    regularised: bool = False
    standard_weights: bool = False
    epochs: int = 1000
    batch_size: int = 64
    learning_rate: float = 0.01
    l1: float = 1e-4
    checkpoint: str = "auto"
    validation_every: int = 20
    validation_repeats: int = 20
    test_every: int = 20
    test_repeats: int = 20
    test_stages: tuple = ()
    test_sampling: str = "batch"
    test_batch_size: int = 100
    augment: str = "auto"

    def __post_init__(self):
        data = self.data
        if isinstance(data, dict):
            data = DataSpec.from_dict(data)
        if not isinstance(data, DataSpec):
            raise ValueError(f"training data must be a DataSpec or its dict; got {type(data).__name__}")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "stage", _stage("training stage", self.stage))
        _bool("regularised", self.regularised)
        _bool("standard_weights", self.standard_weights)
        object.__setattr__(self, "epochs", _int("epochs", self.epochs, 1))
        object.__setattr__(self, "batch_size", _int("batch_size", self.batch_size, 1))
        object.__setattr__(self, "learning_rate", _float("learning_rate", self.learning_rate, 0, True))
        object.__setattr__(self, "l1", _float("l1", self.l1, 0, False))
        _choice("checkpoint", self.checkpoint, CHECKPOINTS)
        for name in ("validation_every", "validation_repeats", "test_every", "test_repeats",
                     "test_batch_size"):
            object.__setattr__(self, name, _int(name, getattr(self, name), 1))
        if isinstance(self.test_stages, (str, bytes, dict)) or not hasattr(self.test_stages, "__iter__"):
            raise ValueError(f"test_stages must be a list of stages; got {self.test_stages!r}")
        stages = tuple(_stage(f"test_stages[{i}]", s) for i, s in enumerate(self.test_stages))
        object.__setattr__(self, "test_stages", stages)
        _choice("test_sampling", self.test_sampling, SAMPLING)
        _choice("augment", self.augment, AUGMENT)

    @property
    def weights(self):
        """``double`` when the stage has nonidealities and standard weights are not forced."""
        return "standard" if self.standard_weights or self.stage.is_ideal else "double"

    @property
    def memristive_checkpoint(self):
        """Whether checkpointing uses memristive validation (repeats under the training stage)."""
        if self.checkpoint == "auto":
            return not self.stage.is_ideal
        return self.checkpoint == "memristive"

    @property
    def augmentation(self):
        if self.augment == "auto":
            return "translate-flip" if self.data.name == "cifar10" else "none"
        return self.augment

    def test_inferences(self):
        """The test-during-training setups as :class:`Inference` configs."""
        return tuple(Inference(stage=s, repeats=self.test_repeats, sampling=self.test_sampling,
                               batch_size=self.test_batch_size) for s in self.test_stages)

    def to_dict(self):
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["data"] = self.data.to_dict()
        fields["stage"] = self.stage.to_dict()
        fields["test_stages"] = [s.to_dict() for s in self.test_stages]
        return fields

    @classmethod
    def from_dict(cls, data):
        return _from_dict(cls, data, {"test_stages": lambda v: tuple(v) if isinstance(v, list) else v})

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def training_config(document):
    """A :class:`Training` from a JSON document: a Training dict, or a training record as ``train``
    writes it (``training.json``: the config is its ``content["training"]``), so that a finished
    run's record can be given back to ``train --config`` to train the same setup again."""
    if isinstance(document, dict) and isinstance(document.get("content"), dict) \
            and "training" in document["content"]:
        document = document["content"]["training"]
    return Training.from_dict(document)


def evaluation_epochs(epochs, every):
    """Epochs (1-based) after which a periodic evaluation runs: epoch 1 and every ``every``-th."""
    return [e for e in range(1, epochs + 1) if e == 1 or e % every == 0]
