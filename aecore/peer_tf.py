"""One TensorFlow measurement for `aecore.peer`, run as a script in its
own process: `python peer_tf.py '<json>'`. It imports neither torch nor
aecore, so it runs under any interpreter that has TensorFlow.

The models are the TensorFlow tutorial's own ("Intro to Autoencoders"):
the dense autoencoder (Flatten, Dense(64, relu), Dense(784, sigmoid),
Reshape) and the convolutional denoiser, compiled with Adam and the mean
squared error as the tutorial compiles them, trained with `model.fit`.
It prints one JSON line: the wall seconds of each epoch.
"""

import json
import os
import sys
import time


def build(name, keras):
    layers = keras.layers
    if name == "tf-dense":
        return keras.Sequential([
            keras.Input((28, 28)), layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(784, activation="sigmoid"),
            layers.Reshape((28, 28))])
    if name == "tf-denoiser":
        return keras.Sequential([
            keras.Input((28, 28, 1)),
            layers.Conv2D(16, 3, activation="relu", padding="same",
                          strides=2),
            layers.Conv2D(8, 3, activation="relu", padding="same",
                          strides=2),
            layers.Conv2DTranspose(8, 3, strides=2, activation="relu",
                                   padding="same"),
            layers.Conv2DTranspose(16, 3, strides=2, activation="relu",
                                   padding="same"),
            layers.Conv2D(1, 3, activation="sigmoid", padding="same")])
    raise SystemExit(f"unknown model {name!r}")


def main(spec):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    keras = tf.keras
    tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(spec["threads"])
    keras.utils.set_random_seed(spec.get("seed", 0))
    X = np.load(spec["images"])                      # N x 28 x 28, [0, 1]
    model = build(spec["model"], keras)
    model.compile(optimizer="adam", loss=keras.losses.MeanSquaredError())
    if spec["model"] == "tf-denoiser":
        X = X[..., None]
        noisy = np.clip(X + 0.2 * np.random.default_rng(0).standard_normal(
            X.shape).astype("float32"), 0, 1)        # one noisy copy
    else:
        noisy = X

    seconds = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    model.fit(noisy, X, epochs=spec["epochs"], batch_size=spec["batch"],
              shuffle=True, verbose=0, callbacks=[Clock()])
    print(json.dumps({"seconds": seconds, "tensorflow": tf.__version__,
                      "keras": keras.__version__}))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
