"""Where Keras training runs: one process (the default), or several workers under
``tf.distribute.MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` names more than one task.

The training functions ask :func:`placement` once and go through it for what differs: the
scope the model and optimizer are created in, the input, the validation score that decides
early stopping, and the log. :class:`Local` passes everything through unchanged, so
single-process training is the code it always was.

Under :class:`MultiWorker` every worker draws the same global batch from the single-process
batch source, seeded alike (so all agree on the users and the input noise of every step),
and trains on its own contiguous share of its rows; Keras sums the replicas' gradients and
each replica's loss is its share (:func:`replica_share`), so a step is a single-process step
over the batch's users, and the global batch size stays ``batch_size``. The draws are not
the single process's one for one: its ``fit`` over a ``PyDataset`` draws two batches ahead
to learn their shapes and visits an epoch's batches in shuffled order; here they are drawn
in order. Validation is scored on every worker and the chief's
score (task ``chief``, else worker 0) is all-reduced to all, so all of them stop at the same
epoch and keep the same weights; only the chief logs.

``TF_CONFIG`` is read by TensorFlow's own resolver. The strategy has to exist before
TensorFlow runs its first op, so entry points call :func:`placement` at startup.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import keras
import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from models.errors import ConfigError

Log = Callable[[str], None]


class GlobalBatches(Protocol):
    """Batches of a whole step as the single-process trainer draws them, from a matrix of
    ``shape`` (rows, columns) in batches of ``batch_size`` rows."""

    shape: tuple[int, int]
    batch_size: int
    rng: np.random.Generator  # draws the noise and the order
    order: np.ndarray  # this epoch's row order

    def __len__(self) -> int: ...

    def draw(self, index: int) -> tuple[sp.coo_matrix, sp.csr_matrix]:
        """(model input with noise applied, (B, columns) COO float32; targets, CSR)."""
        ...

    def on_epoch_end(self) -> None: ...


class Local:
    """One process: every hook is the identity."""

    is_chief = True
    workers = 1
    rank = 0

    def scope(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def steps_per_epoch(self, batches: GlobalBatches) -> int:
        return len(batches)

    def fit(self, model: Any, batches: Any, *, epochs: int, callbacks: list[Any]) -> None:
        model.fit(batches, epochs=epochs, verbose=0, callbacks=callbacks)

    def agreed(self, validate: Callable[[Any], float] | None) -> Callable[[Any], float] | None:
        return validate

    def log(self, log: Log) -> Log:
        return log


@dataclass
class MultiWorker:
    strategy: tf.distribute.MultiWorkerMirroredStrategy
    workers: int
    rank: int  # which share of each batch this worker trains on: 0 for the chief
    is_chief: bool

    def scope(self) -> contextlib.AbstractContextManager[Any]:
        return self.strategy.scope()

    def steps_per_epoch(self, batches: GlobalBatches) -> int:
        # A last batch with fewer rows than workers would leave a replica with none (a NaN
        # mean): it is skipped; its users are in other batches of the next epochs.
        last = batches.shape[0] - (len(batches) - 1) * batches.batch_size
        return len(batches) - int(0 < last < self.workers)

    def inputs(self, batches: GlobalBatches) -> Any:
        """This worker's share of every global batch, epoch after epoch, as a distributed
        dataset."""
        steps = self.steps_per_epoch(batches)
        x_spec = tf.SparseTensorSpec([None, batches.shape[1]], tf.float32)
        y_spec = tf.TensorSpec([None, batches.shape[1]], tf.float32)
        # Every pass over the dataset starts from this state (tf.data may start one twice).
        start = (batches.rng.bit_generator.state, batches.order.copy())

        def shares() -> Iterator[tuple[tf.SparseTensor, np.ndarray]]:
            batches.rng.bit_generator.state, batches.order = start[0], start[1].copy()
            while True:
                for index in range(steps):
                    x, y = batches.draw(index)
                    yield self._share(x, y)
                batches.on_epoch_end()  # the reshuffle a PyDataset gets between epochs

        dataset = tf.data.Dataset.from_generator(shares, output_signature=(x_spec, y_spec)).prefetch(2)
        return self.strategy.distribute_datasets_from_function(lambda context: dataset)

    def fit(self, model: Any, batches: GlobalBatches, *, epochs: int, callbacks: list[Any]) -> None:
        """``model.fit`` for this worker's shares, as a loop of replicated steps with the
        Keras callback protocol. Not ``fit`` itself: Keras 3 (3.15) averages the replicas'
        logged metrics with an axis-0 reduction that fails for scalars across workers, and
        peeks at a distributed (x, y) batch with a reduction that fails too. The step is
        Keras's own: ``model(x, training=True)``, ``compute_loss``, ``apply_gradients``
        (which all-reduces the gradients). The logged loss is the steps' global mean; the
        model's own metrics (nll, kl) are this worker's, over its shares."""
        with self.strategy.scope():  # variables are created here, not inside a replica
            model(tf.zeros((1, batches.shape[1])))
            model.optimizer.build(model.trainable_variables)
        steps = self.steps_per_epoch(batches)
        iterator = iter(self.inputs(batches))
        step = self._step_function(model)
        hooks = keras.callbacks.CallbackList(callbacks, model=model)
        model.stop_training = False
        hooks.on_train_begin()
        for epoch in range(epochs):
            for metric in model.metrics:
                metric.reset_state()
            hooks.on_epoch_begin(epoch)
            total = 0.0
            for index in range(steps):
                hooks.on_train_batch_begin(index)
                total += float(step(iterator))
                hooks.on_train_batch_end(index)
            logs = {"loss": total / steps} | {
                m.name: float(m.result()) for m in model.metrics if m.name != "loss"
            }
            hooks.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
        hooks.on_train_end()

    def _step_function(self, model: Any) -> Callable[[Any], tf.Tensor]:
        def replica_step(x: Any, y: Any) -> tf.Tensor:
            with tf.GradientTape() as tape:
                y_pred = model(x, training=True)
                loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
            grads = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        @tf.function
        def step(iterator: Any) -> tf.Tensor:
            losses = self.strategy.run(replica_step, args=next(iterator))
            return self.strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

        return step

    def _share(self, x: sp.coo_matrix, y: sp.csr_matrix) -> tuple[tf.SparseTensor, np.ndarray]:
        start, stop = _bounds(x.shape[0], self.workers, self.rank)
        keep = (x.row >= start) & (x.row < stop)
        indices = np.stack([x.row[keep] - start, x.col[keep]], axis=1).astype(np.int64)
        x_share = tf.SparseTensor(indices, x.data[keep].astype(np.float32), (stop - start, x.shape[1]))
        return x_share, y[start:stop].toarray()

    def agreed(self, validate: Callable[[Any], float] | None) -> Callable[[Any], float] | None:
        """The chief's validation score, on every worker. Every worker scores (calling a
        model made in the scope may all-reduce its metrics, so all must call it; they would
        wait for the chief anyway) and they agree on the chief's score, so that float noise
        cannot make one worker stop while another goes on."""
        if validate is None:
            return None

        @tf.function
        def total(value: tf.Tensor) -> tf.Tensor:
            per_replica = self.strategy.run(lambda v: v, args=(value,))
            return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

        def score(model: Any) -> float:
            mine = validate(model)
            return float(total(tf.constant(mine if self.is_chief else 0.0, tf.float64)))

        return score

    def log(self, log: Log) -> Log:
        return log if self.is_chief else _quiet


Placement = Local | MultiWorker


@functools.cache
def placement() -> Placement:
    """MultiWorker when ``TF_CONFIG`` names more than one task, else Local. Created once per
    process: call it before TensorFlow runs anything (collectives are set up at startup)."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    spec = resolver.cluster_spec().as_dict()
    tasks = sum(len(spec.get(kind, [])) for kind in ("chief", "worker"))
    if tasks <= 1:
        return Local()
    kind, index = resolver.task_type, int(resolver.task_id or 0)
    if kind not in ("chief", "worker"):
        raise ConfigError(f"TF_CONFIG task type {kind!r}: only chief and worker tasks train")
    strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    if strategy.num_replicas_in_sync != tasks:  # a worker's input is one replica's share
        raise ConfigError(
            f"{strategy.num_replicas_in_sync} replicas for {tasks} workers: give each worker one "
            "device (CUDA_VISIBLE_DEVICES with one GPU, or none)"
        )
    # Workers are numbered after the chief when there is one.
    rank = index + 1 if kind == "worker" and "chief" in spec else index
    return MultiWorker(strategy, workers=tasks, rank=rank, is_chief=rank == 0)


def replica_share(loss: Any) -> Any:
    """A replica's share of a step's mean loss: Keras sums the replicas' gradients. The
    identity in one process (the default strategy has one replica)."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss if replicas == 1 else loss / replicas


def _bounds(n_rows: int, workers: int, rank: int) -> tuple[int, int]:
    return n_rows * rank // workers, n_rows * (rank + 1) // workers


def _quiet(message: str) -> None:
    pass
