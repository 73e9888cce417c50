"""The TensorFlow backend: the op contract of docs/api.md with tf.nn, gradients by tf.GradientTape,
and the layers, models, optimizers and compiled training step of docs/models.md with Keras.

Load it with ``impls.load("tensorflow")``. The package is named after the framework it wraps:
inside it, ``import tensorflow`` finds the real TensorFlow only because ``impls/`` itself is
never on ``sys.path`` (see impls/__init__.py).
"""

from impls.tensorflow.init import INITIALIZERS, initialize
from impls.tensorflow.layers import (
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    LocalResponseNorm,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Tanh,
)
from impls.tensorflow.models import Model, build_model
from impls.tensorflow.ops import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    batchnorm_backward,
    batchnorm_forward,
    conv2d_backward,
    conv2d_forward,
    dropout_backward,
    dropout_forward,
    flatten_backward,
    flatten_forward,
    l2_regularization,
    linear_backward,
    linear_forward,
    local_response_norm_backward,
    local_response_norm_forward,
    lrn_params_from_tf,
    lrn_params_to_tf,
    max_pool2d_backward,
    max_pool2d_forward,
    mse,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    softmax_backward,
    softmax_cross_entropy,
    softmax_forward,
    tanh_backward,
    tanh_forward,
)
from impls.tensorflow.optimizers import OPTIMIZERS, Optimizer, build_optimizer
from impls.tensorflow.train import gradients, train_step

__all__ = [
    "conv2d_forward", "conv2d_backward",
    "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward",
    "linear_forward", "linear_backward",
    "relu_forward", "relu_backward",
    "sigmoid_forward", "sigmoid_backward",
    "tanh_forward", "tanh_backward",
    "flatten_forward", "flatten_backward",
    "softmax_forward", "softmax_backward",
    "softmax_cross_entropy", "mse",
    "batchnorm_forward", "batchnorm_backward",
    "dropout_forward", "dropout_backward",
    "local_response_norm_forward", "local_response_norm_backward",
    "lrn_params_from_tf", "lrn_params_to_tf",
    "l2_regularization",
    # layers.py
    "Conv2d", "MaxPool2d", "AvgPool2d", "Linear", "ReLU", "Sigmoid", "Tanh", "Flatten",
    "BatchNorm1d", "BatchNorm2d", "Dropout", "LocalResponseNorm",
    # models.py
    "Model", "build_model",
    # optimizers.py
    "OPTIMIZERS", "Optimizer", "build_optimizer",
    # train.py
    "train_step", "gradients",
    # init.py
    "INITIALIZERS",
    "initialize",
]
