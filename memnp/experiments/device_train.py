"""The cuda backend's training pass: :func:`memnp.experiments.protocol.train_group`'s epochs,
memristive validation and test-during-training on the GPU (issue 17, items 1-3).

:func:`device_pass` gives a :class:`DevicePass` when the kernel backend is ``cuda`` (the
``--backend`` option or ``MEMNP_BACKEND``) and :class:`memnp.nn.device.DeviceTrainer` can train
every member (``DeviceTrainer.supports``: PF or linear MLPs of double or standard weights, plain
SGD; here also no augmentation, one training set); otherwise None, and train_group takes its host
path (whose layers then call the cuda backend's kernels one by one).

Per epoch of the members training together: the training set stays on the device (uploaded once
per pass as uint8, :class:`memnp.nn.device_eval.PixelTrainer`), the members' permutations go in
(drawn from their shuffle streams, as on the host path) and the per-step losses and accuracies
come back; each member's history is filled from them as from its host steps. The validation
passes (under the training stage, from the validation stream) and the test passes of the test
setups the device runs (:func:`memnp.nn.device_eval.stage_supported`; batch or chip sampling,
chip as :func:`memnp.experiments.passes.evaluate`: each batch draws the chip from the repeat's
seed, for every device, and read noise from the stream ``passes.read_seed(seed)``, on across
batches) run on the device too (:class:`memnp.nn.device_eval.DeviceEvaluator`, the validation and
test sets uploaded once per pass); other test setups run on the host with the synced weights. The
weights come back to the host models (:meth:`DevicePass.host`) only when the host needs them: a
validation that may keep them, a host-side test, an in-job checkpoint, a change of the members
training together, and the end. A resumed member's weights are uploaded with the trainer, so a
resumed run continues on the device.

Numbers: float64 runs give the host path's records and weights to rounding (tests: 1e-10); float32
ones differ in the last bits, which training amplifies (the records say backend cuda).

A diverging member: the device finds it after its epoch, from the record, and raises what the
host path raises at its step: TrainingDiverged for the same epoch and member, naming the
parameter (from the synced weights) where the weights held NaN or inf before a step or after the
epoch, else the non-finite loss; nothing is kept or written on either path (a run that diverges
fails; train writes no weights). Left different: the parameter named is the first non-finite one
of the weights after the whole epoch (the host names it at its step: a later layer's may be the
only one there), and weights whose every entry is 0 (a ValueError on the host) give NaN losses
(TrainingDiverged) on the device.
"""
import numpy as np

from .passes import EvalTask, collect, evaluate_many, read_seed, repeat_source


def device_pass(members, data):
    """A DevicePass for ``members`` (protocol Members) and their data ({split: (uint8 images,
    labels)} per member), or None when the backend is not cuda or a member cannot train on the
    device (:func:`unsupported`)."""
    from ..kernels.backend import backend_name
    if backend_name() != "cuda" or unsupported(members, data) is not None:
        return None
    return DevicePass(members, data)


def unsupported(members, data):
    """None when every member can train on the device, else why not (a sentence)."""
    from ..nn.device import DeviceTrainer
    from ..nn.device_eval import stage_supported
    for index, member in enumerate(members):
        ok, reason = DeviceTrainer.supports(member.model)
        reason = (None if ok else reason) or stage_supported(member.stage, power=False)
        if reason is None and member.training.augmentation != "none":
            reason = f"augmentation {member.training.augmentation!r} runs on the host"
        if reason is not None:
            return f"trainings[{index}]: {reason}"
    if len({id(d["train"][0]) for d in data}) != 1:
        return "the members train on different training sets"
    return None


class DevicePass:
    """The device side of one train_group pass (see the module docstring). members: its Members;
    data: their data dicts (one per member)."""

    def __init__(self, members, data):
        self.data = {id(m): d for m, d in zip(members, data)}
        self.trainer = self.active = self.evaluator = None
        self.sets = {}          # id(uint8 images) -> DeviceData
        self.dirty = False      # device weights newer than the host models'
        self.epoch = 0

    # -- the trainer ------------------------------------------------------------------------------
    def _trainer(self, active):
        """The PixelTrainer of exactly these members (a new set: the old one's weights synced, the
        new one built from the host models)."""
        from ..nn.device_eval import DeviceEvaluator, PixelTrainer
        if self.active is None or [id(m) for m in self.active] != [id(m) for m in active]:
            self.host()
            trainer = PixelTrainer([m.model for m in active], batch_size=active[0].batch_size)
            images, labels = self.data[id(active[0])]["train"]
            trainer.set_data(images, labels)
            self.trainer, self.active = trainer, list(active)
            if self.evaluator is None:
                self.evaluator = DeviceEvaluator.of(trainer)
        return self.trainer

    def host(self):
        """Copy the device weights into the members' host models when they are newer, and check
        them (TrainingDiverged for NaN or inf)."""
        from .protocol import _check_finite
        if not self.dirty:
            return
        self.trainer.sync()
        self.dirty = False
        for member in self.active:
            _check_finite(member.model, None, self.epoch, member.training)

    def train_epoch(self, active, epoch):
        """One epoch of ``active`` (each after ``start_epoch``): steps on the device, the losses and
        accuracies added to each member's sums; TrainingDiverged at the first non-finite loss."""
        from .protocol import _check_finite
        trainer = self._trainer(active)
        first = active[0]
        record = trainer.train_epoch([m.rng["train"] for m in active], order=np.stack([m.order for m in active]),
                                     batch_size=first.batch_size)
        self.dirty, self.epoch = True, epoch
        sizes = [min(first.batch_size, first.examples - begin) for begin in range(0, first.examples, first.batch_size)]
        for s in range(len(sizes)):   # step by step, as the host path finds a diverging member
            if not np.isfinite(record.accuracies[:, s]).all():
                # A member's weights held NaN or inf before step s: the host's step refuses them and
                # checks every member's parameters (_host_epoch); so does host().
                self.host()
            for k, member in enumerate(active):
                _check_finite(member.model, float(record.losses[k, s]), epoch, member.training, parameters=False)
        if not record.finite.all():
            self.host()       # the host path checks the parameters after every epoch
        for k, member in enumerate(active):
            for s, count in enumerate(sizes):
                member.add(float(record.losses[k, s]), float(record.accuracies[k, s]), count)

    # -- evaluation -------------------------------------------------------------------------------
    def _set(self, member, split):
        images, labels = self.data[id(member)][split]
        if id(images) not in self.sets:
            self.sets[id(images)] = self.evaluator.upload(images, labels)
        return self.sets[id(images)]

    def _evaluate(self, items):
        """items: [(member, split, EvalMember, batch size)]; the passes, in order, grouped into one
        device call per data set and batch size."""
        groups = {}
        for position, (member, split, task, batch) in enumerate(items):
            images = self.data[id(member)][split][0]
            groups.setdefault((id(images), batch, task.sampling), []).append(position)
        results = [None] * len(items)
        for (_, batch, _), positions in groups.items():
            member, split = items[positions[0]][:2]
            out = self.evaluator.evaluate(self.trainer.D, [items[i][2] for i in positions], self._set(member, split),
                                          batch)
            for i, result in zip(positions, out):
                results[i] = result
        return results

    def validate(self, active, epoch, limit=None):
        """protocol._validate on the device: round r holds every member's r-th validation pass
        (each member's passes draw one after another from its validation stream); a round is one
        device call (``limit``, the host's largest ensemble, does not apply)."""
        from ..nn.device_eval import EvalMember
        index = {id(m): k for k, m in enumerate(self.active)}
        runs = {id(m): [] for m in active}
        rounds = max(m.validation_repeats(epoch) for m in active)
        for r in range(rounds):
            taking = [m for m in active if m.validation_repeats(epoch) > r]
            items = [(m, "validation", EvalMember(index[id(m)], m.stage, m.rng["validation"], m.model.l1),
                      m.batch_size) for m in taking]
            for member, result in zip(taking, self._evaluate(items)):
                runs[id(member)].append(result)
        if rounds:
            self.host()   # keep_validation copies the weights that improve on the best
        for member in active:
            member.keep_validation(epoch, runs[id(member)])

    def test(self, active, epoch, limit=1):
        """protocol._test with the test setups the device models (stage_supported, batch or chip
        sampling) on the device and the others on the host (``limit``: their largest ensemble)."""
        from ..nn.device_eval import stage_supported
        index = {id(m): k for k, m in enumerate(self.active)}
        plans = [(m, m.test_seeds(epoch)) for m in active]
        on_device, on_host, slots = [], [], {}
        for member, plan in plans:
            for number, (inference, seqs) in enumerate(plan):
                slot = slots.setdefault((id(member), number), [])
                device = stage_supported(inference.stage, power=True) is None
                for seq in seqs:
                    slot.append(None)
                    where = (id(member), number, len(slot) - 1)
                    if device:
                        on_device.append((where, (member, "test", _eval_member(
                            index[id(member)], inference, seq, member.model.l1), inference.batch_size)))
                    else:
                        on_host.append((where, EvalTask(member.model, member.x_test, member.y_test, inference.stage,
                                                        repeat_source(inference.sampling, seq),
                                                        inference.batch_size, inference.sampling)))
        placed = list(zip([w for w, _ in on_device], self._evaluate([item for _, item in on_device])))
        if on_host:
            self.host()
            placed += list(zip([w for w, _ in on_host], evaluate_many([t for _, t in on_host], limit or 1)))
        for (member_id, number, position), result in placed:
            slots[(member_id, number)][position] = result
        for member, plan in plans:
            if plan:
                member.keep_tests(epoch, [collect(slots[(id(member), number)]) for number in range(len(plan))])


def infer_repeats(model, inference, images, labels, seed_sequences):
    """:func:`memnp.experiments.protocol.infer`'s repeats on the GPU: {"accuracy", "loss",
    "power": one value per SeedSequence}, as :func:`memnp.experiments.passes.repeats` gives them,
    or None where they run on the host (the backend is not cuda; a stage the device's power
    kernels do not model, :func:`memnp.nn.device_eval.stage_supported`; a network
    :class:`memnp.nn.device.DeviceTrainer` cannot hold). Batch and chip sampling (each repeat's
    chip drawn from its seed in every batch, read noise from ``passes.read_seed(seed)``).

    model: the trained network (its own training stage does not matter: it is read under the
    inference stage); images (N, ...) uint8 and labels (N,): the test examples, uploaded once; each
    repeat draws what :func:`memnp.experiments.passes.evaluate` draws from its SeedSequence."""
    from ..kernels.backend import backend_name
    if backend_name() != "cuda" or not seed_sequences:
        return None
    from ..nn.device import DeviceTrainer
    from ..nn.device_eval import DeviceEvaluator, PixelTrainer, stage_supported
    if stage_supported(inference.stage, power=True) is not None:
        return None
    own = model.stage
    model.stage = inference.stage     # the trainer holds the weights; the passes read them under this stage
    try:
        ok, _ = DeviceTrainer.supports(model)
        if not ok:
            return None
        trainer = PixelTrainer([model], batch_size=inference.batch_size)
    finally:
        model.stage = own
    evaluator = DeviceEvaluator.of(trainer)
    data = evaluator.upload(images, labels)
    members = [_eval_member(0, inference, seq, model.l1) for seq in seed_sequences]
    return collect(evaluator.evaluate(trainer.D, members, data, inference.batch_size))


def _eval_member(index, inference, seq, l1):
    """The EvalMember of one test or inference repeat seeded by ``seq`` that reads trainer member
    ``index`` with power: batch sampling draws from ``default_rng(seq)``; chip sampling draws every
    batch from that Generator's first words and read noise from ``default_rng(read_seed(seq))``, as
    :func:`memnp.experiments.passes.evaluate` does on the host."""
    from ..nn.device_eval import EvalMember
    chip = inference.sampling == "chip"
    return EvalMember(index, inference.stage, np.random.default_rng(seq), l1, power=True,
                      sampling=inference.sampling,
                      read_rng=np.random.default_rng(read_seed(seq)) if chip else None)
