"""One network's training state, as :func:`memnp.experiments.protocol.train` and
:func:`~memnp.experiments.protocol.train_group` step it: its six random streams, data, model,
histories, best-so-far weights, and the in-job checkpoint's save and resume.

A :class:`Member` holds everything that is one network's own; the drivers in
:mod:`memnp.experiments.protocol` decide only when its batches are stepped (alone, or together
with other members in one :class:`memnp.nn.Ensemble` pass) and when it is evaluated. Every random
draw of a member comes from its own streams, in the same order whichever way it is driven, so a
member trained in a group ends with exactly the numbers and weights it gets alone.
"""
import numpy as np

from .augment import augment
from .configs import Training, evaluation_epochs
from .datasource import to_float

#: Names of the independent random streams of a training job (children of its SeedSequence).
TRAINING_STREAMS = ("init", "shuffle", "train", "augment", "validation", "test")


class Member:
    """One training job inside a (possibly one-member) training pass.

    training: its :class:`Training` config. data: {"train", "validation", "test": (images uint8,
    labels)}. seed_sequence: the job's SeedSequence (split into :data:`TRAINING_STREAMS`).
    initial: optional weights arrays to start from (fine-tuning). floats: optional {id of a uint8
    images array: its float32 pixels}, shared by the members of a pass, so members of one data
    set share one float array of each split (and so may share evaluation passes). Attributes used
    by the drivers:
    ``model`` (the Sequential), ``rng`` ({stream: Generator}), ``done`` (epochs completed before
    this pass: a resumed checkpoint's), ``history``, ``validation``, ``test_history``, ``best``.
    """

    def __init__(self, training, data, seed_sequence, initial=None, floats=None):
        from . import protocol
        if not isinstance(training, Training):
            raise ValueError(f"training must be a Training config; got {type(training).__name__}")
        self.training = training
        streams = dict(zip(TRAINING_STREAMS, seed_sequence.spawn(len(TRAINING_STREAMS))))
        self.rng = {name: np.random.default_rng(seq) for name, seq in streams.items()}
        floats = {} if floats is None else floats

        def split(name):
            images, labels = data[name]
            if id(images) not in floats:
                floats[id(images)] = to_float(images)
            return floats[id(images)], labels

        self.x_train, self.y_train = split("train")
        self.x_val, self.y_val = split("validation")
        self.tests = training.test_inferences()
        if self.tests:
            self.x_test, self.y_test = split("test")
        self.stage = training.stage
        self.model = protocol.build_model(training.data.family, training.weights, self.stage, self.rng["init"],
                                          training.learning_rate, training.l1 if training.regularised else 0.0)
        if initial is not None:
            protocol.start_from(self.model, initial)
        self.memristive = training.memristive_checkpoint
        self.validation_epochs = set(evaluation_epochs(training.epochs, training.validation_every))
        # The test curve also gets the last epoch (the test passes draw from their own stream, so
        # this changes no other number of the job).
        self.test_epochs = set(evaluation_epochs(training.epochs, training.test_every)) | {training.epochs}
        self.history = {"epoch": [], "loss": [], "accuracy": [], "val_loss": [], "val_accuracy": [],
                        "seconds": []}
        self.validation = {"epoch": [], "loss": [], "accuracy": []}
        self.test_history = [{"stage": inf.stage.to_dict(), "label": inf.stage.label, "epoch": [], "loss": [],
                              "accuracy": [], "power": []} for inf in self.tests]
        self.best = {"epoch": None, "value": -np.inf if not self.memristive else 0.0, "weights": None}
        self.done, self.earlier_seconds = 0, 0.0
        self._order = None
        self._sums = [0.0, 0.0]

    # -- steps ------------------------------------------------------------------------------------
    @property
    def epochs(self):
        return self.training.epochs

    @property
    def batch_size(self):
        return self.training.batch_size

    @property
    def examples(self):
        """The number of training examples (p per epoch)."""
        return len(self.y_train)

    def start_epoch(self):
        """Draw this epoch's data order (from the shuffle stream) and reset the epoch's sums."""
        self._order = self.rng["shuffle"].permutation(self.examples)
        self._sums = [0.0, 0.0]

    @property
    def order(self):
        """This epoch's data order (N,) (from :meth:`start_epoch`)."""
        return self._order

    def batch(self, begin):
        """(xb, yb) of the batch starting at ``begin`` in this epoch's order (augmented from the
        augment stream)."""
        idx = self._order[begin:begin + self.batch_size]
        return augment(self.x_train[idx], self.rng["augment"], self.training.augmentation), self.y_train[idx]

    def add(self, loss, acc, count):
        """Add one step's loss and accuracy (over ``count`` examples) to the epoch's sums."""
        self._sums[0] += float(loss) * count
        self._sums[1] += float(acc) * count

    def end_epoch(self, epoch):
        """Record the epoch's training loss and accuracy."""
        n = self.examples
        self.history["epoch"].append(epoch)
        self.history["loss"].append(self._sums[0] / n)
        self.history["accuracy"].append(self._sums[1] / n)

    # -- evaluation -------------------------------------------------------------------------------
    def validation_repeats(self, epoch):
        """How many validation passes follow ``epoch`` (1 for the standard checkpoint, r after a
        memristive validation epoch, 0 otherwise)."""
        if not self.memristive:
            return 1
        return self.training.validation_repeats if epoch in self.validation_epochs else 0

    def keep_validation(self, epoch, runs):
        """Record the validation passes ``runs`` ({"loss", "accuracy"} each) of ``epoch`` and keep
        the weights when they improve on the best so far."""
        if not runs:
            return
        if not self.memristive:
            val = runs[0]
            self.history["val_loss"].append(val["loss"])
            self.history["val_accuracy"].append(val["accuracy"])
            if val["accuracy"] > self.best["value"]:
                self._keep(epoch, val["accuracy"])
            return
        self.validation["epoch"].append(epoch)
        for name in ("loss", "accuracy"):
            self.validation[name].append([r[name] for r in runs])
        median = float(np.median([r["accuracy"] for r in runs]))
        if median > self.best["value"]:
            self._keep(epoch, median)

    def _keep(self, epoch, value):
        from .protocol import model_arrays
        self.best.update(epoch=epoch, value=value, weights=model_arrays(self.model, self.stage))

    def test_seeds(self, epoch):
        """[(inference, [SeedSequence per repeat])] of the test passes after ``epoch`` (drawn from
        the test stream in the order a lone job draws them; empty when no test follows)."""
        if epoch not in self.test_epochs:
            return []
        return [(inf, [np.random.SeedSequence(int(self.rng["test"].integers(2 ** 63))) for _ in range(inf.repeats)])
                for inf in self.tests]

    def keep_tests(self, epoch, results):
        """Record the test passes: ``results`` one {"loss", "accuracy", "power": [per repeat]} per
        test stage."""
        for record, result in zip(self.test_history, results):
            record["epoch"].append(epoch)
            for name in ("loss", "accuracy", "power"):
                record[name].append(result[name])

    # -- the end ------------------------------------------------------------------------------------
    def result(self, seconds):
        """(record, weights) as :func:`memnp.experiments.protocol.train` returns them; ``seconds``
        this pass's share of wall-clock time."""
        from .protocol import model_arrays, synapse_count
        best = self.best
        if best["weights"] is None:  # no validation ever improved on 0: keep the last weights
            best.update(epoch=self.epochs, value=None, weights=model_arrays(self.model, self.stage))
        kept = {"kind": "memristive" if self.memristive else "standard", "epoch": best["epoch"],
                "metric": "median validation accuracy" if self.memristive else "validation accuracy",
                "value": best["value"]}
        record = {"history": self.history, "validation": self.validation if self.memristive else None,
                  "test": self.test_history, "checkpoint": kept, "weights": self.training.weights,
                  "n_synapses": synapse_count(self.model), "resumed_from_epoch": self.done or None,
                  "seconds": self.earlier_seconds + seconds}
        return record, best["weights"]

    # -- checkpoints ----------------------------------------------------------------------------------
    def state(self, epoch, seconds):
        """A TrainingState of this member after ``epoch`` epochs (arrays copied by the writer)."""
        from .checkpoint import TrainingState
        model, best = self.model, self.best
        return TrainingState(epoch=epoch, params={key: layer.params[name] for key, layer, name in model.parameters()},
                             velocity=dict(getattr(model.optimizer, "_velocity", {})),
                             best_weights=best["weights"], history=self.history, validation=self.validation,
                             test=self.test_history, best_epoch=best["epoch"],
                             best_value=None if best["epoch"] is None else best["value"],
                             seconds=self.earlier_seconds + seconds,
                             rng={name: generator.bit_generator.state for name, generator in self.rng.items()})

    def resume(self, state):
        """Restore a loaded TrainingState (None: nothing) into this fresh member, in place; returns
        False, changing nothing, when the state does not fit this job."""
        from .protocol import set_parameters
        training, model, rng = self.training, self.model, self.rng
        if state is None or not 1 <= state.epoch < training.epochs \
                or len(state.history.get("epoch", ())) != state.epoch:
            return False
        if set(state.history) != set(self.history) or set(state.validation) != set(self.validation):
            return False
        if len(state.test) != len(self.test_history) or any(
                set(a) != set(b) or a["label"] != b["label"] for a, b in zip(state.test, self.test_history)):
            return False
        expected = {key: layer.params[name] for key, layer, name in model.parameters()}
        if set(state.params) != set(expected) or any(
                state.params[k].shape != v.shape or state.params[k].dtype != v.dtype for k, v in expected.items()):
            return False
        if state.best_weights is not None and set(state.best_weights) != set(expected) | {"architecture", "stage"}:
            return False
        if set(state.rng) != set(rng):
            return False
        try:  # a state the bit generators refuse leaves the job untouched
            for name, generator in rng.items():
                type(generator.bit_generator)().state = state.rng[name]
        except (TypeError, ValueError, KeyError):
            return False
        set_parameters(model, state.params)
        velocity = getattr(model.optimizer, "_velocity", None)
        if velocity is not None:
            velocity.clear()
            velocity.update({key: np.array(value) for key, value in state.velocity.items()})
        for name, generator in rng.items():
            generator.bit_generator.state = state.rng[name]
        self.history.update(state.history)
        self.validation.update(state.validation)
        for entry, saved in zip(self.test_history, state.test):  # stage and label stay this job's own
            entry.update({name: saved[name] for name in ("epoch", "loss", "accuracy", "power")})
        if state.best_epoch is not None:
            self.best.update(epoch=state.best_epoch, value=state.best_value, weights=state.best_weights)
        self.done, self.earlier_seconds = state.epoch, state.seconds
        return True
