"""Each tutorial network's own training recipe, and the accuracy the tutorial reports, as data.

A ``Recipe`` says how a tutorial trains its network (the model and its options, the dataset,
epochs, batch size, optimizer and its form, learning rate, initialiser, L2) and what it
reports (``Reported``: the value, on which split, where in the tutorial). Every number names
its source: the tutorial's file and section (../shared/seeds/), or, where the tutorial's text
does not give it, the script the tutorial follows. ``python -m reports run --recipe NAME`` and
``python -m reports train --recipe NAME`` (reports/recipes.py) take their defaults from here.

No framework is imported here; the names are those of the project: models and options of
reference/models.py, optimizers and hyperparameters of ``build_optimizer`` (docs/models.md),
datasets of ``impls.data.DATASETS``, initialisers of reference/models.py's ``draw``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# the tutorials (../shared/seeds/README.md)
SCRATCH_SIGNS = "000_946d3da0276e7cdf.txt"  # a NumPy CNN from scratch for SIGNS
CS231N = "001_a0953f4bfa135582.txt"  # cs231n assignment 2
FROM_SCRATCH = "002_28b914d1e690ba9e.txt"  # "Deep Learning from Scratch"
TF_CIFAR = "003_6a6890ac591960e3.txt"  # the TensorFlow CIFAR-10 network
DLAI_SIGNS = "004_e59cb968dc66c9f4.txt"  # deeplearning.ai course 4 week 1

RELATIONS = ("=", ">=", "none")  # printed value, stated lower bound, nothing reported
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")


def _frozen(name: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise TypeError(f"{name}: got {value!r}, expected a mapping of option names to values")
    return MappingProxyType(dict(value))


@dataclass(frozen=True)
class Reported:
    """What a tutorial reports for its own run of its recipe."""

    value: float | None  # a fraction in [0, 1]; None: the tutorial reports no accuracy
    relation: str  # "=": the printed value; ">=": a lower bound it states; "none"
    split: str  # which data the value is measured on ("MNIST test set, 10,000 images")
    text: str  # what the tutorial says, as it says it (numbers quoted, in English)
    source: str  # file and section where it says it
    metric: str = "test_accuracy"

    def __post_init__(self) -> None:
        if self.relation not in RELATIONS:
            raise ValueError(f"relation: got {self.relation!r}, expected one of "
                             f"{', '.join(RELATIONS)}")
        if self.relation == "none":
            if self.value is not None:
                raise ValueError(f"value: got {self.value!r} with relation 'none', expected None")
        elif (isinstance(self.value, bool) or not isinstance(self.value, (int, float))
              or not 0.0 <= self.value <= 1.0):
            raise ValueError(f"value: got {self.value!r}, expected a fraction in [0, 1]")
        for name in ("split", "text", "source", "metric"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise TypeError(f"{name}: got {getattr(self, name)!r}, expected a non-empty "
                                "string")

    def describe(self) -> str:
        """"98.82 %", "above 99 %" or "none reported"."""
        if self.value is None:
            return "none reported"
        percent = f"{100 * self.value:.4g} %"
        return percent if self.relation == "=" else f"at least {percent}"

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "relation": self.relation, "metric": self.metric,
                "split": self.split, "text": self.text, "source": self.source}


@dataclass(frozen=True)
class Recipe:
    """One tutorial network trained as its tutorial trains it."""

    name: str  # the recipe's name on the command line
    title: str  # the network as the tutorial calls it
    tutorial: str  # its file in ../shared/seeds/
    model: str  # a name of reference.models.MODELS
    dataset: str  # a name of impls.data.DATASETS
    epochs: int  # passes over the training set (see ``iterations``)
    batch_size: int
    optimizer: str  # a build_optimizer name
    lr: float
    reported: Reported
    settings_source: str  # where epochs, batch, optimizer, lr, init come from
    # options of the model (reference.models.resolve); {} = the model as the project defines it
    model_options: Mapping[str, Any] = field(default_factory=dict)
    # build_optimizer hyperparameters besides lr: the tutorial's form and epsilon
    optimizer_options: Mapping[str, Any] = field(default_factory=dict)
    init: str | None = None  # the weights' initialiser; None: the model's own (per layer)
    weight_decay: float | None = None  # the L2 coefficient; None: the model's own (per layer)
    iterations: int | None = None  # when the tutorial counts steps, not epochs
    notes: tuple[str, ...] = ()  # where this run cannot be the tutorial's, and why

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"name: got {self.name!r}, expected a lower-case identifier")
        for key in ("title", "tutorial", "model", "dataset", "settings_source"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise TypeError(f"{key}: got {getattr(self, key)!r}, expected a non-empty "
                                "string")
        for key in ("epochs", "batch_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}: got {value!r}, expected an integer >= 1")
        if self.iterations is not None and (isinstance(self.iterations, bool)
                                            or not isinstance(self.iterations, int)
                                            or self.iterations < 1):
            raise ValueError(f"iterations: got {self.iterations!r}, expected None or an "
                             "integer >= 1")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer: got {self.optimizer!r}, expected one of "
                             f"{', '.join(_OPTIMIZERS)}")
        if (isinstance(self.lr, bool) or not isinstance(self.lr, (int, float))
                or not math.isfinite(self.lr) or self.lr <= 0):
            raise ValueError(f"lr: got {self.lr!r}, expected a finite number > 0")
        if self.init is not None and not isinstance(self.init, str):
            raise TypeError(f"init: got {self.init!r}, expected an initialiser name or None")
        if self.weight_decay is not None and (
                isinstance(self.weight_decay, bool)
                or not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0):
            raise ValueError(f"weight_decay: got {self.weight_decay!r}, expected None or a "
                             "number >= 0")
        if not isinstance(self.reported, Reported):
            raise TypeError(f"reported: got {self.reported!r}, expected a Reported")
        if not isinstance(self.notes, tuple) or not all(isinstance(n, str) for n in self.notes):
            raise TypeError(f"notes: got {self.notes!r}, expected a tuple of strings")
        object.__setattr__(self, "model_options", _frozen("model_options", self.model_options))
        object.__setattr__(self, "optimizer_options",
                           _frozen("optimizer_options", self.optimizer_options))

    def model_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``build_model`` / ``resolve`` besides the data's shape:
        the model options, and init and weight_decay where the recipe names them."""
        kwargs = dict(self.model_options)
        if self.init is not None:
            kwargs["init"] = self.init
        if self.weight_decay is not None:
            kwargs["weight_decay"] = self.weight_decay
        return kwargs

    def summary(self) -> str:
        """One line: the recipe as ``--help`` lists it."""
        steps = f"{self.epochs} epoch{'s' * (self.epochs != 1)}"
        if self.iterations:
            steps += f" ({self.iterations} iterations)"
        return (f"{self.title} ({self.tutorial[:3]}): {self.model} on {self.dataset}, {steps}, "
                f"batch {self.batch_size}, {self.optimizer} lr {self.lr:g}; tutorial's "
                f"accuracy: {self.reported.describe()}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (results.json's config["recipe"]["recipe"])."""
        return {"name": self.name, "title": self.title, "tutorial": self.tutorial,
                "model": self.model, "model_options": dict(self.model_options),
                "dataset": self.dataset, "epochs": self.epochs,
                "iterations": self.iterations, "batch_size": self.batch_size,
                "optimizer": self.optimizer, "optimizer_options": dict(self.optimizer_options),
                "lr": self.lr, "init": self.init, "weight_decay": self.weight_decay,
                "reported": self.reported.as_dict(), "settings_source": self.settings_source,
                "notes": list(self.notes)}


# 002's Adam (its section 4): lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t) and 1e-7 added to
# the uncorrected sqrt(v): the "epsilon hat" form; betas 0.9, 0.999
_FROM_SCRATCH_ADAM = {"form": "eps_hat", "eps": 1e-7}
# tf.train.AdamOptimizer (003) and tf.compat.v1.train.AdamOptimizer (004): the same form with
# TensorFlow's default epsilon 1e-8
_TF1_ADAM = {"form": "eps_hat", "eps": 1e-8}
# bias-corrected moments, eps 1e-8 added to sqrt of the corrected v (000's code; cs231n's
# optim.adam)
_TEXTBOOK_ADAM = {"form": "textbook", "eps": 1e-8}

_BOOK_TRAINER = ("its Trainer draws each batch with np.random.choice (with replacement) and "
                 "counts an epoch as 600 batches; here an epoch is one pass over the shuffled "
                 "training set in batches (impls.data.batches), the same in every framework")

RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe(
        name="simple_cnn", title="SimpleConvNet", tutorial=FROM_SCRATCH, model="simple_cnn",
        dataset="mnist", epochs=20, batch_size=100, optimizer="adam", lr=0.001,
        optimizer_options=_FROM_SCRATCH_ADAM, init="normal(0.01)", weight_decay=0.0,
        reported=Reported(0.9882, "=", "MNIST test set, 10,000 images",
                          "'=====Final Test Accuracy===== test acc:0.9882'",
                          f"{FROM_SCRATCH}, section 11.1 (the convolutional network's output)"),
        settings_source=(f"not in {FROM_SCRATCH}, which shows only the output: the book's "
                         "ch07/train_convnet.py, which it follows (epochs=20, "
                         "mini_batch_size=100, optimizer 'Adam' with lr 0.001, "
                         "weight_init_std=0.01)"),
        notes=(_BOOK_TRAINER,
               "the book's Trainer evaluates on 1,000 test images per epoch and on the whole "
               "test set at the end; here every epoch is evaluated on the whole test set")),
    Recipe(
        name="deep_cnn", title="DeepConvNet", tutorial=FROM_SCRATCH, model="deep_cnn",
        dataset="mnist", epochs=20, batch_size=100, optimizer="adam", lr=0.001,
        optimizer_options=_FROM_SCRATCH_ADAM, init=None, weight_decay=0.0,
        reported=Reported(0.99, ">=", "MNIST test set, 10,000 images",
                          "above 99 %; 'test acc:0.9939' and 'Saved Network Parameters!' are "
                          "printed after the two-layer net of section 3, an output that "
                          "belongs to a CNN trainer (the book's ch08/train_deepnet.py prints "
                          "those lines)",
                          f"{FROM_SCRATCH}, section 11.3 (deep network; no output of its own) "
                          "and section 3 (the misplaced output)"),
        settings_source=(f"not in {FROM_SCRATCH} (section 11.3 is a title): the book's "
                         "ch08/train_deepnet.py (epochs=20, mini_batch_size=100, 'Adam' lr "
                         "0.001; DeepConvNet's He init)"),
        notes=(_BOOK_TRAINER,
               "dropout masks are drawn in NumPy from the seed (the same units in every "
               "framework), not by the book's np.random.rand")),
    Recipe(
        name="two_layer_net", title="TwoLayerNet", tutorial=FROM_SCRATCH, model="mlp",
        model_options={"hidden": (50,), "activation": "sigmoid"},
        dataset="mnist", epochs=17, iterations=10000, batch_size=100, optimizer="sgd",
        lr=0.1, init="normal(0.01)", weight_decay=0.0,
        reported=Reported(0.9435, "=", "MNIST test set, 10,000 images",
                          "'train acc, test acc, loss | 0.9465833333333333, 0.9435, "
                          "0.1750376927445897' (the last of the lines printed)",
                          f"{FROM_SCRATCH}, section 2 (training the two-layer net with "
                          "numerical gradients)"),
        settings_source=(f"{FROM_SCRATCH}, section 2: TwoLayerNet(784, hidden_size=50, 10), "
                         "sigmoid hidden layer, weight_init_std=0.01, iters_num=10000, "
                         "batch_size=100, learning_rate=0.1, plain SGD"),
        notes=("the tutorial runs 10,000 iterations of 100 images drawn with replacement "
               "(16.7 epochs of MNIST's 60,000); here 17 epochs of shuffled batches (10,200 "
               "steps)",
               "the tutorial's gradients are numerical (central differences); here each "
               "backend's own (analytic or autodiff); the same function",
               "section 3's ReLU version of the net prints another trainer's output "
               "('test acc:0.9939')")),
    Recipe(
        name="three_layer_cnn", title="ThreeLayerConvNet", tutorial=CS231N,
        model="three_layer_cnn", model_options={"hidden": 500},
        dataset="cifar10", epochs=1, batch_size=50, optimizer="adam", lr=1e-3,
        optimizer_options=_TEXTBOOK_ADAM, init="normal(0.001)", weight_decay=1e-3,
        reported=Reported(None, "none", "CIFAR-10 validation set (1,000 images) in cs231n",
                          "no accuracy in the text: 'to save time we trained only 1 epoch', "
                          "then loss and accuracy plots",
                          f"{CS231N}, section 4 (training)"),
        settings_source=(f"{CS231N}, section 4: ThreeLayerConvNet(weight_scale=0.001, "
                         "hidden_dim=500, reg=0.001), Solver(num_epochs=1, batch_size=50, "
                         "update_rule='adam', learning_rate 1e-3); cs231n's optim.adam is the "
                         "textbook form with eps 1e-8"),
        notes=("cs231n subtracts the mean image and trains on 49,000 images (1,000 held out "
               "for validation); here images in [0, 1], every training image, and the test "
               "split",
               "its L2 is 0.5 * reg * sum(W**2) over the three weights, the project's form")),
    Recipe(
        name="cifar_lrn_cnn", title="the TensorFlow CIFAR-10 network", tutorial=TF_CIFAR,
        model="cifar_lrn_cnn", dataset="cifar10", epochs=100, batch_size=64,
        optimizer="adam", lr=1e-4, optimizer_options=_TF1_ADAM, init=None, weight_decay=None,
        reported=Reported(0.697, "=", "CIFAR-10 test set, 10,000 images",
                          "'the accuracy on the test set is 69.7%'",
                          f"{TF_CIFAR}, section 6.2 (the TensorFlow implementation), after "
                          "its training run"),
        settings_source=(f"{TF_CIFAR}, section 6.2: train(epochs=100), Dataset(batch_size=64), "
                         "tf.train.AdamOptimizer(learning_rate=0.0001) (TensorFlow's defaults "
                         "beta1 0.9, beta2 0.999, epsilon 1e-8), truncated_normal_initializer("
                         "stddev=5e-2), tf.nn.l2_loss(W) * 0.005 (conv) and * 0.004 (dense): "
                         "the model's own init and per-layer L2"),
        notes=("the tutorial standardises each channel by the training set's mean and std "
               "and keeps 49,000 training images (1,000 for validation); here images in "
               "[0, 1] and every training image",
               "its Dataset(shuffle=True) shuffles an index array it never uses: its batches "
               "come in the same order every epoch; here they are shuffled per epoch",
               "its test accuracy is the mean of 157 batch accuracies (the last batch has 16 "
               "images); here the accuracy over all test images",
               "the network is the tutorial's with its bugs fixed (docs/models.md: bias before "
               "the ReLU, logits into the loss, no ReLU on the logits)")),
    Recipe(
        name="signs_cnn", title="the SIGNS ConvNet", tutorial=DLAI_SIGNS, model="signs_cnn",
        dataset="signs", epochs=150, batch_size=64, optimizer="adam", lr=0.005,
        optimizer_options=_TF1_ADAM, init=None, weight_decay=0.0,
        reported=Reported(None, "none", "SIGNS test set, 120 images",
                          "no accuracy printed: the output ends with the cost every 5 epochs, "
                          "the last '145th epoch, cost 0.06252288771793246'",
                          f"{DLAI_SIGNS}, part 5 of the TensorFlow model ('building the "
                          "model'), its training run"),
        settings_source=(f"{DLAI_SIGNS}, part 5 of the TensorFlow model: model(..., "
                         "learning_rate=0.005, num_epochs=100, minibatch_size=64) called "
                         "with num_epochs=150, "
                         "tf.compat.v1.train.AdamOptimizer (epsilon 1e-8), glorot_normal "
                         "filters, the dense layer's default Glorot uniform: the model's own"),
        notes=("random_mini_batches keeps the last partial batch (1,080 = 16 x 64 + 56) with a "
               "new seed each epoch; here impls.data.batches, also with the partial batch",
               "its epoch cost divides the 17 batch costs by int(1080 / 64) = 16")),
    Recipe(
        name="signs_scratch_cnn", title="the NumPy SIGNS CNN", tutorial=SCRATCH_SIGNS,
        model="signs_scratch_cnn", dataset="signs", epochs=10, batch_size=64,
        optimizer="adam", lr=0.001, optimizer_options=_TEXTBOOK_ADAM, init=None,
        weight_decay=0.0,
        reported=Reported(None, "none", "SIGNS test set, 120 images",
                          "no accuracy printed (its loop prints 'Cost after epoch', train_acc "
                          "and val_acc, but no output is shown)",
                          f"{SCRATCH_SIGNS}, 'Adam optimizer'"),
        settings_source=(f"{SCRATCH_SIGNS} gives Adam's beta1 0.9, beta2 0.999, epsilon "
                         "1e-8 (bias-corrected, eps outside the root) and He init but not the "
                         "learning rate, epochs or batch: those are from the run.py of the "
                         "repository it links (Mustufain/Convolution-Neural-Network-, commit "
                         "34e18f67: epoch=10, learning_rate=0.001, minibatch_size=64)"),
        notes=("that run.py builds the conv with num_filters=1, the article 10; the recipe "
               "follows the article",
               "its epoch cost is 'loss += loss' after 'loss, grads = fit(...)': twice the "
               "last batch's loss, not the epoch's")),
)}


def recipe(name: object) -> Recipe:
    """The recipe called ``name``; ValueError naming the recipes otherwise."""
    if not isinstance(name, str) or name not in RECIPES:
        raise ValueError(f"recipe: got {name!r}, expected one of {', '.join(RECIPES)}")
    return RECIPES[name]
